"""A deployed rental contract, a gateway store and a sync service for the sync tests (real anvil)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.providers import HTTPProvider

from edge.chain.commitment import plate_commitment
from edge.chain.contract import RentalClient, deploy
from edge.chain.keystore import create_keystore
from edge.chain.sync import SyncService, SyncTuning, client
from edge.chain.syncplan import lot_bytes
from edge.config import ChainConfig
from edge.store import Store
from edge.store.rows import GateEventRow, new_event_id
from edge.tools.anvil import dev_account

LOT = "LOT-1"
LOT_SECRET = bytes.fromhex("00112233445566778899aabbccddeeff0123")
PRICE_PER_HOUR = 10**15
HOUR = 3600
GATEWAY_INDEX = 5
PASSWORD = "correct horse battery staple"


@dataclass
class World:
    w3: Web3
    admin: RentalClient
    owner: RentalClient
    renter: RentalClient
    gateway: LocalAccount
    space_id: int
    deploy_block: int
    listings: int = 0  # listings of one space must not overlap: each new one starts later

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def commitment(self, plate: str = "B-AB 1234") -> str:
        return "0x" + plate_commitment(LOT_SECRET, LOT, plate).hex()

    def settings(self, **overrides: object) -> dict[str, Any]:
        """The service's ``chain``, ``lot_id`` and ``tuning`` for this world; ``overrides`` are ``[chain]``
        keys or :class:`SyncTuning` fields."""
        tuning_keys = {f.name for f in fields(SyncTuning)}
        chain = {"enabled": True, "contract_address": self.admin.address, "chain_id": 31337,
                 "confirmations": 0, "start_block": self.deploy_block, "batch_size": 50}
        tuning = {"receipt_wait_s": 5.0}
        for key, value in overrides.items():
            (tuning if key in tuning_keys else chain)[key] = value
        return {"chain": ChainConfig(**chain), "lot_id": LOT, "tuning": SyncTuning(**tuning)}  # type: ignore[arg-type]

    def service(self, store: Store, w3: Web3 | None = None, **overrides: object) -> SyncService:
        return SyncService(w3 or self.w3, store, self.gateway, **self.settings(**overrides))

    def listing(self, hours: int = 6, lead_s: int = 600) -> tuple[int, int]:
        """A listing of the space starting ``lead_s`` from now (the default is inside the booking's
        admission window: its car may enter at once)."""
        start = self.now() + lead_s + self.listings * (hours + 1) * HOUR
        self.listings += 1
        rental = self.owner.create_rental_event(self.space_id, start, start + hours * HOUR, PRICE_PER_HOUR)
        return rental.return_value, start

    def book(self, plate: str = "B-AB 1234", lead_s: int = 600) -> int:
        rental_id, start = self.listing(lead_s=lead_s)
        commitment = bytes.fromhex(self.commitment(plate)[2:])
        return self.renter.request_rental(rental_id, start, start + 2 * HOUR, commitment).return_value


Answer = dict[str, Any]
Hook = Callable[[str, Any, Callable[..., Answer]], Answer]


class Tamper(HTTPProvider):
    """The real node (anvil) behind a hook that may rewrite its answers: ``hook(method, params, real)``
    returns the answer (``real()`` asks the node, ``real(other_params)`` asks it something else). It
    simulates a lying, lagging or filtering node; the node itself is never mocked."""

    def __init__(self, url: str, hook: Hook) -> None:
        super().__init__(url, exception_retry_configuration=None)
        self.hook = hook

    def make_request(self, method: Any, params: Any) -> Any:
        return self.hook(method, params, lambda asked=params: super(Tamper, self).make_request(method, asked))


def tampered(world: World, hook: Hook) -> Web3:
    """A client of the world's node whose answers pass through ``hook``."""
    return client(Tamper(world.w3.provider.endpoint_uri, hook))  # type: ignore[attr-defined]


def answer(result: object) -> Answer:
    """A JSON-RPC answer carrying ``result`` (``None``: "not found")."""
    return {"jsonrpc": "2.0", "id": 1, "result": result}


def build_world(w3: Web3) -> World:
    """Fresh deployment: lot LOT-1 with the gateway key of dev account 5, a verified owner's space."""
    accounts = w3.eth.accounts
    admin = deploy(w3, accounts[0])
    gateway = dev_account(GATEWAY_INDEX)
    admin.register_lot(lot_bytes(LOT), "u33dc0")
    admin.set_gateway(lot_bytes(LOT), gateway.address)
    admin.verify_owner(accounts[1], b"\x01" * 32)
    owner = admin.with_sender(accounts[1])
    space_id = owner.register_space(lot_bytes(LOT), "L-1/B17").return_value
    admin.approve_space(space_id)
    return World(w3, admin, owner, admin.with_sender(accounts[2]), gateway, space_id,
                 admin.deploy_receipt["blockNumber"])


def gate_event(kind: str, occurred_s: int, booking_id: int | None = None, commitment: str | None = None,
               lane: str = "entry-1") -> GateEventRow:
    return GateEventRow(event_id=new_event_id(occurred_s * 1000), lane=lane, direction="entry", kind=kind,
                     reason="test", occurred_at_ms=occurred_s * 1000,
                     booking_id=None if booking_id is None else str(booking_id), plate_commitment=commitment)


def record_denied(store: Store, count: int, occurred_s: int) -> list[str]:
    """``count`` denied attempts (no booking) queued for the chain in ONE store transaction."""
    ids = []
    with store.transaction():
        for _ in range(count):
            event = gate_event("denied", occurred_s)
            store.record_gate_event(event, destinations=("chain",))
            ids.append(event.event_id)
    return ids


def landed_denials(w3: Web3, contract: RentalClient, from_block: int) -> list[int]:
    """Record numbers of every GateDenied log (one per record applied on chain), in chain order."""
    return [e.args["seq"] for e in contract.events("GateDenied", from_block=from_block)]


def store_path(tmp: Path) -> Path:
    return tmp / "parkgate.sqlite"


def write_config(tmp: Path, world: World, rpc_url: str, batch_size: int = 20) -> Path:
    """A gateway TOML config with chain sync on, the gateway key in a fast test keystore."""
    password = tmp / "keystore-password"
    password.write_text(PASSWORD + "\n")
    keystore = tmp / "gateway.keystore.json"
    if not keystore.exists():  # pbkdf2 with few rounds: every restart decrypts it, keep tests fast
        create_keystore(keystore, PASSWORD, world.gateway.key, kdf="pbkdf2", iterations=2)
    plate_key = tmp / "plate.key"
    plate_key.write_text(LOT_SECRET.hex() + "\n")
    config = tmp / "parkgate.toml"
    config.write_text(f"""
[gateway]
id = "gw-test"
lot_id = "{LOT}"
state_dir = "{tmp}"

[store]
path = "{store_path(tmp)}"

[chain]
enabled = true
rpc_url = "{rpc_url}"
chain_id = 31337
contract_address = "{world.admin.address}"
keystore = "{keystore}"
password_file = "{password}"
plate_key_file = "{plate_key}"
confirmations = 0
batch_size = {batch_size}
poll_interval_s = 0.2
""")
    return config
