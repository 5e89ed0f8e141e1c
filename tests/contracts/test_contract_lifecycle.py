"""The six numbered steps of the issue, one test each, against a real anvil: emitted events + stored state."""

from __future__ import annotations

from rental_world import (
    CANCELLABLE_LEAD,
    HOUR,
    LOT_CODE,
    PRICE_PER_HOUR,
    RECORD_DEADLINE,
    World,
    book,
    gate_record,
    listing,
)

from edge.chain.commitment import lot_code
from edge.chain.contract import ChainBookingStatus, RecordKind


def test_step1_verifier_attests_owner(world: World) -> None:
    owner = world.w3.eth.accounts[4]
    assert not world.admin.is_verified_owner(owner)
    result = world.admin.verify_owner(owner, b"\xaa" * 32)
    event = result.one("OwnerVerified")
    assert event.args == {"owner": owner, "verifier": world.w3.eth.accounts[0], "attestation": b"\xaa" * 32}
    assert world.admin.is_verified_owner(owner)
    revoked = world.admin.revoke_owner(owner)
    assert revoked.one("OwnerRevoked").args["owner"] == owner
    assert not world.admin.is_verified_owner(owner)


def test_step2_verified_owner_publishes_rental_event(world: World) -> None:
    start = world.now() + 600
    result = world.owner.create_rental_event(world.space_id, start, start + 4 * HOUR, PRICE_PER_HOUR)
    rental_id = result.return_value
    event = result.one("RentalEventCreated")
    assert event.args == {"rentalId": rental_id, "spaceId": world.space_id, "lotId": world.lot,
                          "owner": world.owner.sender, "start": start, "end": start + 4 * HOUR,
                          "pricePerHour": PRICE_PER_HOUR}
    stored = world.admin.get_rental_event(rental_id)
    assert (stored.space_id, stored.lot_id, stored.owner) == (world.space_id, world.lot, world.owner.sender)
    assert (stored.start, stored.end, stored.price_per_hour, stored.cancelled) == (
        start, start + 4 * HOUR, PRICE_PER_HOUR, False)


def test_step3_first_association_is_broadcast_and_filterable_by_lot(world: World) -> None:
    rental_id, _ = listing(world)
    logs = world.admin.events("FirstAssociation", lot_id=world.lot)
    assert [e.args for e in logs] == [{"rentalId": rental_id, "spaceId": world.space_id, "lotId": world.lot,
                                       "geohash": "u33dc0", "location": "L-1/B17"}]
    assert world.admin.events("FirstAssociation", lot_id=world.other_lot) == []
    assert lot_code(logs[0].args["lotId"]) == LOT_CODE
    space = world.admin.get_space(world.space_id)
    assert (space.lot_id, space.owner, space.location) == (world.lot, world.owner.sender, "L-1/B17")
    assert world.admin.get_lot(world.lot).geohash == "u33dc0"


def test_step4_renter_pays_escrow_and_commits_vehicle(world: World) -> None:
    rental_id, start = listing(world)
    escrow = world.renter.quote(rental_id, start, start + 2 * HOUR)
    assert escrow == 2 * PRICE_PER_HOUR
    balance_before = world.w3.eth.get_balance(world.admin.address)
    result = world.renter.request_rental(rental_id, start, start + 2 * HOUR, world.commitment())
    booking_id = result.return_value
    assert result.one("RentalRequested").args == {
        "bookingId": booking_id, "rentalId": rental_id, "lotId": world.lot, "renter": world.renter.sender,
        "start": start, "end": start + 2 * HOUR, "escrow": escrow, "vehicleCommitment": world.commitment()}
    assert world.w3.eth.get_balance(world.admin.address) == balance_before + escrow
    booking = world.admin.get_booking(booking_id)
    assert booking.status is ChainBookingStatus.REQUESTED
    assert (booking.renter, booking.escrow, booking.vehicle_commitment) == (
        world.renter.sender, escrow, world.commitment())
    assert world.admin.live_bookings(rental_id) == [booking_id]


def test_step5_gateway_entry_record_verifies_plate_checks_in_and_broadcasts_second_association(
        world: World) -> None:
    rental_id, booking_id, start = book(world)
    now = world.now()
    record = gate_record(world, RecordKind.CHECK_IN, booking_id, 1, now)
    result = world.gateway.record_gate_events([record])
    assert result.one("SecondAssociation").args == {
        "bookingId": booking_id, "lotId": world.lot, "rentalId": rental_id, "timestamp": now}
    booking = world.admin.get_booking(booking_id)
    assert (booking.status, booking.check_in_at) == (ChainBookingStatus.CHECKED_IN, now)
    assert world.admin.is_processed(world.gateway_account.address, 1)
    filtered = world.admin.events("SecondAssociation", lot_id=world.lot)
    assert [e.args["bookingId"] for e in filtered] == [booking_id]
    # the rest of the association (renter, space, address) is joined by ids from earlier events
    requested = world.admin.events("RentalRequested", lot_id=world.lot)[-1].args
    first = world.admin.events("FirstAssociation", lot_id=world.lot)[-1].args
    assert (requested["bookingId"], requested["renter"]) == (booking_id, world.renter.sender)
    assert (first["rentalId"], first["spaceId"], first["geohash"], first["location"]) == (
        rental_id, world.space_id, "u33dc0", "L-1/B17")


def test_step6_check_in_check_out_then_settle_pays_owner_and_refunds_unused_escrow(world: World) -> None:
    rental_id, booking_id, start = book(world, hours=2)
    world.advance(600)
    check_in_at = world.now()
    world.gateway.record_gate_events([gate_record(world, RecordKind.CHECK_IN, booking_id, 1, check_in_at)])
    booking = world.admin.get_booking(booking_id)
    assert (booking.status, booking.check_in_at) == (ChainBookingStatus.CHECKED_IN, check_in_at)
    world.advance(HOUR)
    check_out_at = start + HOUR  # one of the two booked hours used
    check_out = gate_record(world, RecordKind.CHECK_OUT, booking_id, 2, check_out_at)
    out = world.gateway.record_gate_events([check_out])
    assert out.one("CheckedOut").args == {"bookingId": booking_id, "lotId": world.lot,
                                          "timestamp": check_out_at}
    booking = world.admin.get_booking(booking_id)
    assert (booking.status, booking.check_out_at) == (ChainBookingStatus.CHECKED_OUT, check_out_at)
    settled = world.owner.settle([booking_id])
    assert settled.one("Settled").args == {"bookingId": booking_id, "lotId": world.lot,
                                           "toOwner": PRICE_PER_HOUR, "refund": PRICE_PER_HOUR}
    assert world.admin.get_booking(booking_id).status is ChainBookingStatus.SETTLED
    assert world.admin.pending_withdrawal(world.owner.sender) == PRICE_PER_HOUR
    assert world.admin.pending_withdrawal(world.renter.sender) == PRICE_PER_HOUR

    before = world.w3.eth.get_balance(world.owner.sender)
    withdrawal = world.owner.withdraw()
    fee = withdrawal.gas_used * withdrawal.receipt["effectiveGasPrice"]
    assert withdrawal.one("Withdrawal").args == {"payee": world.owner.sender, "amount": PRICE_PER_HOUR}
    assert world.w3.eth.get_balance(world.owner.sender) == before + PRICE_PER_HOUR - fee
    assert world.admin.pending_withdrawal(world.owner.sender) == 0
    world.renter.request_rental(rental_id, start + 2 * HOUR, start + 3 * HOUR, world.commitment())
    assert booking_id not in world.admin.live_bookings(rental_id)  # closed bookings are pruned lazily


def test_step6_renter_cancels_before_the_cancel_cutoff_for_full_refund(world: World) -> None:
    rental_id, booking_id, _ = book(world, lead_s=CANCELLABLE_LEAD)
    result = world.renter.cancel_booking(booking_id)
    escrow = 2 * PRICE_PER_HOUR
    assert result.one("BookingCancelled").args == {"bookingId": booking_id, "lotId": world.lot,
                                                   "refund": escrow}
    assert world.admin.get_booking(booking_id).status is ChainBookingStatus.CANCELLED
    assert world.admin.pending_withdrawal(world.renter.sender) == escrow
    assert world.admin.live_bookings(rental_id) == []


def test_step6_unused_booking_expires_after_the_record_deadline_with_refund_by_anyone(world: World) -> None:
    _, booking_id, start = book(world)
    world.advance(start + 2 * HOUR + RECORD_DEADLINE + 1 - world.now())
    result = world.stranger.expire_booking(booking_id)
    assert result.one("BookingExpired").args["refund"] == 2 * PRICE_PER_HOUR
    assert world.admin.get_booking(booking_id).status is ChainBookingStatus.EXPIRED
    assert world.admin.pending_withdrawal(world.renter.sender) == 2 * PRICE_PER_HOUR


def test_step6_overdue_checked_in_booking_settles_in_full_to_owner(world: World) -> None:
    _, booking_id, start = book(world)
    world.advance(600)
    world.gateway.record_gate_events([gate_record(world, RecordKind.CHECK_IN, booking_id, 1, world.now())])
    world.advance(start + 2 * HOUR + RECORD_DEADLINE + 1 - world.now())
    result = world.stranger.settle_overdue(booking_id)
    assert result.one("Settled").args == {"bookingId": booking_id, "lotId": world.lot,
                                          "toOwner": 2 * PRICE_PER_HOUR, "refund": 0}
    assert world.admin.pending_withdrawal(world.owner.sender) == 2 * PRICE_PER_HOUR


def test_step6_owner_cancels_listing_and_open_bookings_are_refunded(world: World) -> None:
    rental_id, booking_id, _ = book(world, lead_s=CANCELLABLE_LEAD)
    result = world.owner.cancel_rental_event(rental_id)
    assert [e.name for e in result.events] == ["BookingCancelled", "RentalEventCancelled"]
    assert result.one("RentalEventCancelled").args == {"rentalId": rental_id, "lotId": world.lot}
    assert world.admin.get_rental_event(rental_id).cancelled
    assert world.admin.get_booking(booking_id).status is ChainBookingStatus.CANCELLED
    assert world.admin.pending_withdrawal(world.renter.sender) == 2 * PRICE_PER_HOUR


def test_step6_space_can_be_rebooked_after_a_cancelled_booking(world: World) -> None:
    rental_id, booking_id, start = book(world, lead_s=CANCELLABLE_LEAD)
    world.renter.cancel_booking(booking_id)
    again = world.stranger.request_rental(rental_id, start, start + HOUR, world.commitment("M-XY 9"))
    assert world.admin.live_bookings(rental_id) == [again.return_value]


def test_step6_back_to_back_bookings_do_not_overlap(world: World) -> None:
    rental_id, start = listing(world)
    first = world.renter.request_rental(rental_id, start, start + HOUR, world.commitment()).return_value
    second = world.stranger.request_rental(rental_id, start + HOUR, start + 2 * HOUR,
                                           world.commitment("M-XY 9")).return_value
    assert sorted(world.admin.live_bookings(rental_id)) == [first, second]
