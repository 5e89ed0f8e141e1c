"""The chain side of the demo/tests/chaos: a local anvil with the rental contract, a verified owner,
a lot with this gateway, spaces listed (first association) and renters' bookings (vehicle
commitments, never plates), plus the gateway's keystore and the lot secret files the daemon reads.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from eth_account.signers.local import LocalAccount
from web3 import Web3

from edge.booking.client import request_commitment
from edge.chain.commitment import lot_id, plate_commitment
from edge.chain.contract import RentalClient, deploy
from edge.chain.keystore import create_keystore
from edge.chain.syncplan import chain_lot_code
from edge.tools.anvil import dev_account

PRICE_PER_HOUR = 10**15
GATEWAY_ACCOUNT = 5
KEYSTORE_PASSWORD = "demo-only-password"


@dataclass
class ChainWorld:
    w3: Web3
    admin: RentalClient
    owner: RentalClient
    gateway: LocalAccount
    lot_code: str
    plate_key: bytes
    space_ids: list[int] = field(default_factory=list)
    first_association_txs: list[str] = field(default_factory=list)
    renter_index: int = 2
    booking_url: str | None = None  # the lot's booking service; None: commitments computed here

    def now(self) -> int:
        """The chain's time now: the latest block's, or the wall clock when no block was mined for a while
        (anvil dates the next block by the wall clock; a stale block time made a window start in the past
        by the time its transaction was mined)."""
        return max(int(self.w3.eth.get_block("latest")["timestamp"]), int(time.time()))

    def commitment(self, plate: str) -> bytes:
        return plate_commitment(self.plate_key, self.lot_code, plate)

    def list_space(self, location: str, start: int, end: int) -> int:
        """The owner registers a space, the lot admin approves it, and the owner offers it for [start, end):
        the first association."""
        space_id = self.owner.register_space(lot_id(self.lot_code), location).return_value
        self.admin.approve_space(space_id)
        self.space_ids.append(space_id)
        result = self.owner.create_rental_event(space_id, start, end, PRICE_PER_HOUR)
        self.first_association_txs.append("0x" + bytes(result.tx_hash).hex())
        return int(result.return_value)

    def book(self, rental_id: int, plate: str, start: int, end: int) -> int:
        """A renter books with the vehicle commitment of ``plate``: asked from the booking service with a
        request the renter's account signs (when ``booking_url`` is set), else computed here."""
        account = dev_account(self.renter_index)
        commitment = self.commitment(plate)
        if self.booking_url is not None:
            answer = request_commitment(self.booking_url, account, self.lot_code, self.admin.address,
                                        int(self.w3.eth.chain_id), plate, (rental_id, start, end))
            commitment = bytes.fromhex(answer["commitment"].removeprefix("0x"))
        renter = self.admin.with_sender(account)
        return int(renter.request_rental(rental_id, start, end, commitment).return_value)


def build_world(w3: Web3, gateway_lot_id: str, plate_key: bytes) -> ChainWorld:
    """Deploy, verify an owner, register the lot and authorise the gateway account on it."""
    accounts = list(w3.eth.accounts)
    admin = deploy(w3, accounts[0])
    code = chain_lot_code(gateway_lot_id)
    lot = lot_id(code)
    admin.register_lot(lot, "u33dc0")
    gateway = dev_account(GATEWAY_ACCOUNT)
    admin.set_gateway(lot, gateway.address)
    admin.verify_owner(accounts[1], b"\x01" * 32)
    return ChainWorld(w3, admin, admin.with_sender(accounts[1]), gateway, code, plate_key)


def write_secrets(directory: Path, gateway: LocalAccount) -> dict[str, Path]:
    """Keystore (cheap KDF: demo only), its password and a fresh lot secret, mode 0600."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"keystore": directory / "gateway-key.json", "password": directory / "keystore-password",
             "plate_key": directory / "plate-key"}
    create_keystore(paths["keystore"], KEYSTORE_PASSWORD, gateway.key, kdf="pbkdf2", iterations=2048)
    for name, text in (("password", KEYSTORE_PASSWORD), ("plate_key", secrets.token_hex(32))):
        paths[name].write_text(text + "\n")
        paths[name].chmod(0o600)
    return paths


def chain_section(rpc_url: str, contract: str, paths: dict[str, Path]) -> dict[str, object]:
    return {"enabled": True, "rpc_url": rpc_url, "chain_id": 31337, "contract_address": contract,
            "keystore": str(paths["keystore"]), "password_file": str(paths["password"]),
            "plate_key_file": str(paths["plate_key"]), "confirmations": 0, "poll_interval_s": 0.5,
            "batch_size": 50}
