"""Fixtures for the contract suite: one real anvil per session, a fresh deployment per test.

Each test gets its own deployment (a few milliseconds on anvil), so tests never share contract state.
Time travel uses anvil's ``evm_increaseTime``; every test reads the chain clock, never the wall clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from edge.chain.anvil import Anvil, AnvilConfig, dev_account
from edge.chain.commitment import lot_id, plate_commitment
from edge.chain.contract import RentalClient, deploy

LOT_CODE = "LOT-NORD-1"
OTHER_LOT_CODE = "LOT-SUED-2"
LOT_SECRET = bytes.fromhex("6b1f0e2d9c8a7b6e5d4c3b2a19081726354453627180")
PLATE = "B-AB 1234"
PRICE_PER_HOUR = 10**15  # 0.001 ether per hour
HOUR = 3600


@pytest.fixture(scope="session")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Anvil]:
    log = Path(tmp_path_factory.mktemp("anvil")) / "anvil.log"
    with Anvil(AnvilConfig(), log_path=log) as node:
        yield node


@pytest.fixture(scope="session")
def w3(anvil: Anvil) -> Web3:
    return anvil.web3()


@dataclass
class World:
    """A deployed contract with one lot, a verified owner with a space, a renter and two gateways."""

    w3: Web3
    admin: RentalClient
    owner: RentalClient
    renter: RentalClient
    stranger: RentalClient
    gateway: RentalClient  # signs locally (LocalAccount), like the real daemon
    other_gateway: RentalClient  # gateway of another lot
    gateway_account: LocalAccount
    lot: bytes
    other_lot: bytes
    space_id: int

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def advance(self, seconds: int) -> None:
        self.w3.provider.make_request("evm_increaseTime", [seconds])
        self.w3.provider.make_request("evm_mine", [])

    def commitment(self, plate: str = PLATE) -> bytes:
        return plate_commitment(LOT_SECRET, LOT_CODE, plate)


@pytest.fixture
def world(w3: Web3) -> World:
    accounts = w3.eth.accounts
    admin = deploy(w3, accounts[0])
    lot, other_lot = lot_id(LOT_CODE), lot_id(OTHER_LOT_CODE)
    admin.register_lot(lot, "u33dc0")
    admin.register_lot(other_lot, "u33d9q")
    gateway_account, other_gateway_account = dev_account(5), dev_account(6)
    admin.set_gateway(lot, gateway_account.address)
    admin.set_gateway(other_lot, other_gateway_account.address)
    admin.verify_owner(accounts[1], b"\x01" * 32)
    owner = admin.with_sender(accounts[1])
    space_id = owner.register_space(lot, "L-1/B17").return_value
    return World(
        w3=w3, admin=admin, owner=owner, renter=admin.with_sender(accounts[2]),
        stranger=admin.with_sender(accounts[3]), gateway=admin.with_sender(gateway_account),
        other_gateway=admin.with_sender(other_gateway_account), gateway_account=gateway_account,
        lot=lot, other_lot=other_lot, space_id=space_id,
    )
