"""Every revert path of ParkgateRental: each asserts the exact Solidity error and unchanged state."""

from __future__ import annotations

import pytest
from eth_utils import keccak
from rental_world import (
    CANCEL_CUTOFF,
    CANCELLABLE_LEAD,
    HOUR,
    PRICE_PER_HOUR,
    RECORD_DEADLINE,
    World,
    book,
    gate_record,
    listing,
    reverts,
)

from edge.chain.contract import ChainBookingStatus, RecordKind, deploy_artifact, send

# ---------------------------------------------------------------- unverified owner

def test_unverified_owner_cannot_register_a_space(world: World) -> None:
    with reverts("NotVerifiedOwner") as info:
        world.stranger.register_space(world.lot, "L-0/B01")
    assert info.value.args_ == (world.stranger.sender,)
    assert world.admin.counts()[0] == 1


def test_revoked_owner_cannot_list(world: World) -> None:
    world.admin.revoke_owner(world.owner.sender)
    start = world.now() + 600
    with reverts("NotVerifiedOwner"):
        world.owner.create_rental_event(world.space_id, start, start + HOUR, PRICE_PER_HOUR)
    assert world.admin.counts()[1] == 0


def test_owner_cannot_list_someone_elses_space(world: World) -> None:
    world.admin.verify_owner(world.stranger.sender, b"\x02" * 32)
    start = world.now() + 600
    with reverts("NotSpaceOwner"):
        world.stranger.create_rental_event(world.space_id, start, start + HOUR, PRICE_PER_HOUR)


def test_listing_needs_a_future_window_and_a_price(world: World) -> None:
    now = world.now()
    with reverts("InvalidWindow"):
        world.owner.create_rental_event(world.space_id, now + HOUR, now + HOUR, PRICE_PER_HOUR)
    with reverts("InvalidWindow"):
        world.owner.create_rental_event(world.space_id, now - HOUR, now + HOUR, PRICE_PER_HOUR)
    with reverts("InvalidWindow"):
        world.owner.create_rental_event(world.space_id, now + 600, now + 367 * 24 * HOUR, PRICE_PER_HOUR)
    with reverts("ZeroPrice"):
        world.owner.create_rental_event(world.space_id, now + 600, now + HOUR, 0)
    with reverts("UnknownSpace"):
        world.owner.create_rental_event(99, now + 600, now + HOUR, PRICE_PER_HOUR)


def test_space_needs_a_known_lot(world: World) -> None:
    with reverts("UnknownLot"):
        world.owner.register_space(b"NOPE".ljust(32, b"\0"), "L-1/B01")


# ---------------------------------------------------------------- wrong role

@pytest.mark.parametrize("call", [
    lambda w: w.stranger.verify_owner(w.stranger.sender, b"\x01" * 32),
    lambda w: w.stranger.revoke_owner(w.owner.sender),
    lambda w: w.stranger.register_lot(b"X".ljust(32, b"\0"), "u0"),
    lambda w: w.stranger.set_gateway(w.lot, w.stranger.sender, True),
    lambda w: w.gateway.set_gateway(w.lot, w.stranger.sender, True),
    lambda w: w.owner.grant_role("VERIFIER_ROLE", w.owner.sender),
], ids=["verifyOwner", "revokeOwner", "registerLot", "setGateway", "gateway-self-admin", "grantRole"])
def test_admin_functions_need_their_role(world: World, call) -> None:
    with reverts("AccessControlUnauthorizedAccount"):
        call(world)
    assert not world.admin.is_gateway(world.lot, world.stranger.sender)
    assert not world.admin.has_role("VERIFIER_ROLE", world.owner.sender)


def test_non_gateway_cannot_record_gate_events(world: World) -> None:
    _, booking_id, _ = book(world)
    record = gate_record(world, RecordKind.CHECK_IN, booking_id, 1, world.now())
    with reverts("NotAGateway"):
        world.renter.record_gate_events([record])
    assert world.admin.last_seq(world.renter.sender) == 0
    assert world.admin.get_booking(booking_id).status is ChainBookingStatus.REQUESTED


def test_revoked_gateway_cannot_record(world: World) -> None:
    world.admin.set_gateway(world.lot, world.gateway.sender.address, False)
    _, booking_id, _ = book(world)
    with reverts("NotAGateway"):
        world.gateway.record_gate_events([gate_record(world, RecordKind.CHECK_IN, booking_id, 1,
                                                      world.now())])


def test_only_renter_cancels_and_only_owner_cancels_listing(world: World) -> None:
    rental_id, booking_id, _ = book(world)
    with reverts("NotRenter"):
        world.stranger.cancel_booking(booking_id)
    with reverts("NotRentalOwner"):
        world.stranger.cancel_rental_event(rental_id)
    assert world.admin.get_booking(booking_id).status is ChainBookingStatus.REQUESTED


# ---------------------------------------------------------------- overlapping booking / listing

def test_overlapping_bookingreverts(world: World) -> None:
    rental_id, booking_id, start = book(world, hours=2)
    with reverts("OverlappingBooking") as info:
        world.stranger.request_rental(rental_id, start + HOUR, start + 3 * HOUR, world.commitment("M-XY 9"))
    assert info.value.args_ == (rental_id, booking_id)
    assert world.admin.live_bookings(rental_id) == [booking_id]


def test_overlapping_rental_event_for_the_same_spacereverts(world: World) -> None:
    rental_id, start = listing(world, hours=4)
    with reverts("OverlappingRentalEvent") as info:
        world.owner.create_rental_event(world.space_id, start + 3 * HOUR, start + 6 * HOUR, PRICE_PER_HOUR)
    assert info.value.args_ == (world.space_id, rental_id)
    adjacent = world.owner.create_rental_event(world.space_id, start + 4 * HOUR, start + 6 * HOUR,
                                               PRICE_PER_HOUR)
    assert adjacent.return_value == rental_id + 1


def test_booking_must_fit_listing_pay_exactly_and_commit(world: World) -> None:
    rental_id, start = listing(world, hours=4)
    with reverts("InvalidWindow"):
        world.renter.request_rental(rental_id, start - 60, start + HOUR, world.commitment())
    with reverts("InvalidWindow"):
        world.renter.request_rental(rental_id, start, start + 5 * HOUR, world.commitment())
    with reverts("WrongPayment") as info:
        world.renter.request_rental(rental_id, start, start + HOUR, world.commitment(),
                                    value=PRICE_PER_HOUR - 1)
    assert info.value.args_ == (PRICE_PER_HOUR, PRICE_PER_HOUR - 1)
    with reverts("EmptyCommitment"):
        world.renter.request_rental(rental_id, start, start + HOUR, b"\0" * 32)
    with reverts("UnknownRentalEvent"):
        world.renter.request_rental(999, start, start + HOUR, world.commitment(), value=1)
    assert world.admin.counts()[2] == 0


def test_cancelled_listing_cannot_be_booked_or_cancelled_twice(world: World) -> None:
    rental_id, start = listing(world)
    world.owner.cancel_rental_event(rental_id)
    with reverts("RentalEventCancelledAlready"):
        world.renter.request_rental(rental_id, start, start + HOUR, world.commitment(), value=PRICE_PER_HOUR)
    with reverts("RentalEventCancelledAlready"):
        world.owner.cancel_rental_event(rental_id)


def test_too_many_live_bookings_on_one_listing(world: World) -> None:
    start = world.now() + 600
    rental_id = world.owner.create_rental_event(world.space_id, start, start + 40 * HOUR,
                                                PRICE_PER_HOUR).return_value
    renters = world.w3.eth.accounts[2:10]  # 8 accounts x 4 bookings each (the per-renter cap)
    for hour in range(32):
        booker = world.admin.with_sender(renters[hour // 4])
        booker.request_rental(rental_id, start + hour * HOUR, start + (hour + 1) * HOUR, world.commitment())
    with reverts("TooManyLive"):
        world.stranger.request_rental(rental_id, start + 32 * HOUR, start + 33 * HOUR, world.commitment())


# ---------------------------------------------------------------- cancellation, expiry, double settle

def test_renter_cannot_cancel_from_the_cancel_cutoff_on(world: World) -> None:
    _, booking_id, start = book(world, lead_s=CANCELLABLE_LEAD)
    world.advance(start - CANCEL_CUTOFF - world.now())  # the gateway may admit it before seeing a cancel
    with reverts("TooLateToCancel"):
        world.renter.cancel_booking(booking_id)
    assert world.admin.get_booking(booking_id).status is ChainBookingStatus.REQUESTED


def test_expiry_only_after_window_plus_record_deadline_and_only_once(world: World) -> None:
    _, booking_id, start = book(world, hours=1)
    with reverts("NotYetExpired") as info:
        world.stranger.expire_booking(booking_id)
    assert info.value.args_ == (booking_id, start + HOUR + RECORD_DEADLINE)
    world.advance(start + HOUR + RECORD_DEADLINE + 1 - world.now())
    world.stranger.expire_booking(booking_id)
    with reverts("BookingNotActive"):
        world.stranger.expire_booking(booking_id)
    assert world.admin.pending_withdrawal(world.renter.sender) == PRICE_PER_HOUR


def test_double_settle_reverts_and_pays_once(world: World) -> None:
    _, booking_id, start = book(world, hours=1)
    world.advance(600)
    now = world.now()
    world.gateway.record_gate_events([gate_record(world, RecordKind.CHECK_IN, booking_id, 1, now)])
    with reverts("NotYetExpired"):
        world.stranger.settle_overdue(booking_id)
    world.advance(start + HOUR + RECORD_DEADLINE + 1 - world.now())
    world.stranger.settle_overdue(booking_id)
    with reverts("AlreadySettled"):
        world.stranger.settle_overdue(booking_id)
    assert world.admin.pending_withdrawal(world.owner.sender) == PRICE_PER_HOUR


def test_settle_after_gateway_checkoutreverts(world: World) -> None:
    _, booking_id, start = book(world, hours=1)
    world.advance(600)
    now = world.now()
    world.gateway.record_gate_events([gate_record(world, RecordKind.CHECK_IN, booking_id, 1, now),
                                      gate_record(world, RecordKind.CHECK_OUT, booking_id, 2, now + 60)])
    world.advance(2 * HOUR + RECORD_DEADLINE)
    with reverts("BookingNotActive"):
        world.stranger.settle_overdue(booking_id)  # checked out: settle() pays it, not settleOverdue
    world.stranger.settle([booking_id])
    with reverts("AlreadySettled"):
        world.stranger.settle_overdue(booking_id)
    with reverts("BookingNotActive"):
        world.stranger.expire_booking(booking_id)


def test_owner_cannot_cancel_listing_with_a_car_inside(world: World) -> None:
    rental_id, booking_id, _ = book(world)
    world.advance(600)
    now = world.now()
    world.gateway.record_gate_events([gate_record(world, RecordKind.CHECK_IN, booking_id, 1, now)])
    with reverts("HasCheckedInBooking"):
        world.owner.cancel_rental_event(rental_id)
    assert world.admin.get_booking(booking_id).status is ChainBookingStatus.CHECKED_IN


def test_withdraw_without_credit_and_twicereverts(world: World) -> None:
    with reverts("NothingToWithdraw"):
        world.stranger.withdraw()
    _, booking_id, _ = book(world, lead_s=CANCELLABLE_LEAD)
    world.renter.cancel_booking(booking_id)
    world.renter.withdraw()
    with reverts("NothingToWithdraw"):
        world.renter.withdraw()


# ---------------------------------------------------------------- reentrancy

def _attacker_with_credit(world: World, mode: int):
    attacker, _ = deploy_artifact(world.w3, "ReentrancyAttacker", world.stranger.sender, world.admin.address)
    rental_id, start = listing(world, lead_s=CANCELLABLE_LEAD)
    sender, abi = world.stranger.sender, world.admin.abi
    send(world.w3, attacker.functions.book(rental_id, start, start + HOUR, world.commitment()), sender, abi,
         value=PRICE_PER_HOUR)
    send(world.w3, attacker.functions.cancel(world.admin.counts()[2]), sender, abi)
    send(world.w3, attacker.functions.setMode(mode), sender, abi)
    assert world.admin.pending_withdrawal(attacker.address) == PRICE_PER_HOUR
    return attacker


def test_reentrant_withdraw_is_blocked_and_pays_once(world: World) -> None:
    attacker = _attacker_with_credit(world, mode=0)
    contract_balance = world.w3.eth.get_balance(world.admin.address)
    send(world.w3, attacker.functions.attack(), world.stranger.sender, world.admin.abi)
    assert attacker.functions.reentryAttempts().call() == 1
    assert attacker.functions.reentrySucceeded().call() is False
    selector = bytes(attacker.functions.lastError().call())[:4]
    assert selector == keccak(text="ReentrancyGuardReentrantCall()")[:4]
    assert attacker.functions.received().call() == PRICE_PER_HOUR
    assert world.w3.eth.get_balance(world.admin.address) == contract_balance - PRICE_PER_HOUR
    assert world.admin.pending_withdrawal(attacker.address) == 0


def test_reentrancy_that_bubbles_reverts_whole_withdrawal_and_keeps_credit(world: World) -> None:
    attacker = _attacker_with_credit(world, mode=1)
    contract_balance = world.w3.eth.get_balance(world.admin.address)
    with reverts("ReentrancyGuardReentrantCall"):
        send(world.w3, attacker.functions.attack(), world.stranger.sender, world.admin.abi)
    assert world.admin.pending_withdrawal(attacker.address) == PRICE_PER_HOUR
    assert world.w3.eth.get_balance(world.admin.address) == contract_balance
