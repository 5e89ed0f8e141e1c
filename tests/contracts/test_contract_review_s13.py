"""The contract findings of review s13, replayed on a real anvil: each attack now fails.

1. a revoked owner's listings kept taking bookings, and nobody else could cancel them;
2. the same bay could be registered twice in a lot (overlap checks are per space id);
3. free parking: a cancel mined just before admission while the gateway's cache lags;
4. griefing: refundable bookings parked at the far end of a 366-day listing held its 32 live slots.
"""

from __future__ import annotations

from rental_world import (
    CANCEL_CUTOFF,
    CANCELLABLE_LEAD,
    DAY,
    GRACE_PERIOD,
    HOUR,
    MAX_ADVANCE,
    OTHER_LOT_CODE,
    PRICE_PER_HOUR,
    World,
    book,
    gate_record,
    listing,
    reverts,
)

from edge.chain.commitment import lot_id
from edge.chain.contract import ChainBookingStatus, RecordKind
from edge.chain.windows import CANCEL_CUTOFF_S, GRACE_PERIOD_S, MAX_ADVANCE_S

# ---------------------------------------------------------------- 1. revoked owners

def test_a_revoked_owners_listing_takes_no_bookings(world: World) -> None:
    rental_id, start = listing(world)
    world.admin.revoke_owner(world.owner.sender)
    with reverts("NotVerifiedOwner") as info:
        world.renter.request_rental(rental_id, start, start + HOUR, world.commitment())
    assert info.value.args_ == (world.owner.sender,)
    assert world.admin.counts()[2] == 0
    world.admin.verify_owner(world.owner.sender, b"\x03" * 32)  # verified again: bookable again
    assert world.renter.request_rental(rental_id, start, start + HOUR, world.commitment()).return_value == 1


def test_a_verifier_cancels_a_revoked_owners_listing_with_full_refunds(world: World) -> None:
    rental_id, booking_id, _ = book(world, lead_s=CANCELLABLE_LEAD)
    world.admin.revoke_owner(world.owner.sender)
    verifier = world.admin.with_sender(world.w3.eth.accounts[4])  # holds VERIFIER_ROLE only
    with reverts("NotRentalOwner"):
        verifier.cancel_rental_event(rental_id)
    world.admin.grant_role("VERIFIER_ROLE", verifier.sender)
    with reverts("NotRentalOwner"):  # a role without owner verification (lot admin only) still cannot
        lot_admin = world.admin.with_sender(world.w3.eth.accounts[3])
        world.admin.grant_role("LOT_ADMIN_ROLE", lot_admin.sender)
        lot_admin.cancel_rental_event(rental_id)
    result = verifier.cancel_rental_event(rental_id)
    assert [e.name for e in result.events] == ["BookingCancelled", "RentalEventCancelled"]
    assert result.one("BookingCancelled").args["refund"] == 2 * PRICE_PER_HOUR
    assert world.admin.get_rental_event(rental_id).cancelled
    assert world.admin.get_booking(booking_id).status is ChainBookingStatus.CANCELLED
    assert world.admin.pending_withdrawal(world.renter.sender) == 2 * PRICE_PER_HOUR
    assert world.admin.pending_withdrawal(world.owner.sender) == 0


def test_a_verifiers_cancel_keeps_the_owners_refund_rules(world: World) -> None:
    rental_id, booking_id, _ = book(world)  # starts in 10 minutes: past its cancel cutoff
    world.admin.revoke_owner(world.owner.sender)
    with reverts("TooLateToCancel") as info:
        world.admin.cancel_rental_event(rental_id)
    assert info.value.args_ == (booking_id,)
    world.gateway.record_gate_events([gate_record(world, RecordKind.CHECK_IN, booking_id, 1, world.now())])
    with reverts("HasCheckedInBooking"):
        world.admin.cancel_rental_event(rental_id)
    assert not world.admin.get_rental_event(rental_id).cancelled


# ---------------------------------------------------------------- 2. one bay, one space

def test_a_bay_is_registered_once_per_lot(world: World) -> None:
    with reverts("SpaceExists") as info:
        world.owner.register_space(world.lot, "L-1/B17")
    assert info.value.args_ == (world.lot, "L-1/B17", world.space_id)
    world.admin.verify_owner(world.stranger.sender, b"\x02" * 32)
    with reverts("SpaceExists"):  # another owner cannot list the same bay either
        world.stranger.register_space(world.lot, "L-1/B17")
    assert world.admin.counts()[0] == 1
    assert world.admin.space_at(world.lot, "L-1/B17") == world.space_id
    other = world.stranger.register_space(lot_id(OTHER_LOT_CODE), "L-1/B17").return_value  # another lot
    assert world.admin.space_at(lot_id(OTHER_LOT_CODE), "L-1/B17") == other != world.space_id
    assert world.admin.space_at(world.lot, "L-1/B18") == 0


# ---------------------------------------------------------------- 3. cancel cutoff before admission

def test_cancel_just_before_admission_no_longer_parks_for_free(world: World) -> None:
    """Repro D: a cancel mined 902 s before the start (the gateway sees it two blocks later) is refused;
    the gateway's check-in at the admission start applies, and the renter pays for the visit."""
    rental_id, booking_id, start = book(world, lead_s=CANCELLABLE_LEAD)
    world.advance(start - GRACE_PERIOD - 2 - world.now())
    with reverts("TooLateToCancel"):
        world.renter.cancel_booking(booking_id)
    with reverts("TooLateToCancel"):  # nor through the listing
        world.owner.cancel_rental_event(rental_id)
    entry = world.gateway.record_gate_events([gate_record(world, RecordKind.CHECK_IN, booking_id, 1,
                                                          start - GRACE_PERIOD)])
    assert entry.named("GateRecordRejected") == [] and entry.one("SecondAssociation")
    assert world.admin.pending_withdrawal(world.renter.sender) == 0


def test_cancel_cutoff_lies_a_margin_before_the_admission_window(world: World) -> None:
    assert world.admin.contract.functions.CANCEL_CUTOFF().call() == CANCEL_CUTOFF
    assert CANCEL_CUTOFF - world.admin.contract.functions.GRACE_PERIOD().call() >= 30 * 60
    _, booking_id, start = book(world, lead_s=CANCELLABLE_LEAD)
    world.advance(start - CANCEL_CUTOFF - 120 - world.now())
    refund = world.renter.cancel_booking(booking_id).one("BookingCancelled").args["refund"]
    assert refund == 2 * PRICE_PER_HOUR


# ---------------------------------------------------------------- 4. how far ahead a booking may start

def test_bookings_cannot_be_parked_at_the_far_end_of_a_long_listing(world: World) -> None:
    """Repro C: griefers placed refundable bookings 300+ days ahead; now a booking starts at most
    MAX_ADVANCE (14 days) after the block time."""
    start = world.now() + 600
    rental_id = world.owner.create_rental_event(world.space_id, start, start + 366 * DAY,
                                                PRICE_PER_HOUR).return_value
    far = start + 365 * DAY
    with reverts("TooFarAhead") as info:
        world.stranger.request_rental(rental_id, far, far + HOUR, world.commitment())
    assert info.value.args_[0] == far
    latest = info.value.args_[1]
    assert 0 <= latest - MAX_ADVANCE - world.now() <= 5
    with reverts("TooFarAhead"):
        world.stranger.request_rental(rental_id, latest + HOUR, latest + 2 * HOUR, world.commitment())
    near = world.now() + MAX_ADVANCE - HOUR
    booked = world.stranger.request_rental(rental_id, near, near + HOUR, world.commitment())
    assert world.admin.get_booking(booked.return_value).status is ChainBookingStatus.REQUESTED


def test_python_mirrors_of_the_new_constants_match_the_contract(world: World) -> None:
    """edge.chain.windows says the contract's rules in words before anything is sent: same numbers."""
    functions = world.admin.contract.functions
    assert functions.CANCEL_CUTOFF().call() == CANCEL_CUTOFF_S == CANCEL_CUTOFF
    assert functions.MAX_ADVANCE().call() == MAX_ADVANCE_S == MAX_ADVANCE
    assert functions.GRACE_PERIOD().call() == GRACE_PERIOD_S == GRACE_PERIOD
