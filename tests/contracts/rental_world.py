"""Shared scenario for the contract tests: constants and a deployed "world" (imported by conftest)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from edge.chain.commitment import lot_id, plate_commitment
from edge.chain.contract import ContractRevert, GateRecord, RecordKind, RentalClient, deploy
from edge.tools.anvil import dev_account

LOT_CODE = "LOT-NORD-1"
OTHER_LOT_CODE = "LOT-SUED-2"
LOT_SECRET = bytes.fromhex("6b1f0e2d9c8a7b6e5d4c3b2a19081726354453627180")
PLATE = "B-AB 1234"
PRICE_PER_HOUR = 10**15  # 0.001 ether per hour
HOUR = 3600
DAY = 24 * HOUR
RECORD_DEADLINE = DAY  # the contract's: expire / settleOverdue only after end + RECORD_DEADLINE
GRACE_PERIOD = 15 * 60  # the contract's: the gateway admits a booked car from start - GRACE_PERIOD
CANCEL_CUTOFF = HOUR  # the contract's: no cancelling from start - CANCEL_CUTOFF
MAX_ADVANCE = 14 * DAY  # the contract's: a booking starts at most this far after the block time
CANCELLABLE_LEAD = 2 * HOUR  # a booking made this far ahead can still be cancelled for a while


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


def build_world(w3: Web3) -> World:
    """Deploy a fresh contract with two lots and gateways, a verified owner with one space."""
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
    admin.approve_space(space_id)
    return World(
        w3=w3, admin=admin, owner=owner, renter=admin.with_sender(accounts[2]),
        stranger=admin.with_sender(accounts[3]), gateway=admin.with_sender(gateway_account),
        other_gateway=admin.with_sender(other_gateway_account), gateway_account=gateway_account,
        lot=lot, other_lot=other_lot, space_id=space_id,
    )


def listing(world: World, hours: int = 4, lead_s: int = 600) -> tuple[int, int]:
    """A listing starting ``lead_s`` from now (the default: inside the admission window of a booking
    from its start, so its car may enter at once)."""
    start = world.now() + lead_s
    rental_id = world.owner.create_rental_event(world.space_id, start, start + hours * HOUR,
                                                PRICE_PER_HOUR).return_value
    return rental_id, start


def book(world: World, hours: int = 2, lead_s: int = 600) -> tuple[int, int, int]:
    rental_id, start = listing(world, lead_s=lead_s)
    booking_id = world.renter.request_rental(rental_id, start, start + hours * HOUR,
                                             world.commitment()).return_value
    return rental_id, booking_id, start


def gate_record(world: World, kind: RecordKind, booking_id: int, seq: int, timestamp: int,
                commitment: bytes | None = None) -> GateRecord:
    """Record number ``seq`` of a gateway (numbers must increase per gateway)."""
    return GateRecord(seq, kind, booking_id, commitment or world.commitment(), timestamp)


def reverts(error: str) -> Any:
    """``pytest.raises`` for the contract's custom error ``error`` (matched by its name)."""
    return pytest.raises(ContractRevert, match=rf"^{error}\b")
