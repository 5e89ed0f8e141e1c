"""Gateway batches: per-gateway record numbers (replays skipped once), one entry record, per-record
rejection without reverting the batch, crash + resubmit, settlement off the gate path."""

from __future__ import annotations

from rental_world import HOUR, PRICE_PER_HOUR, World, book, gate_record

from edge.chain.contract import ChainBookingStatus, GateRecord, RecordKind, RejectReason


def _enter_and_leave(world: World, booking_id: int, first_seq: int) -> list[GateRecord]:
    now = world.now()
    return [gate_record(world, RecordKind.CHECK_IN, booking_id, first_seq, now),
            gate_record(world, RecordKind.CHECK_OUT, booking_id, first_seq + 1, now + 60)]


def _credits(world: World) -> tuple[int, int]:
    """(owner, renter) amounts waiting for withdrawal."""
    pending = world.admin.pending_withdrawal
    return pending(world.owner.sender), pending(world.renter.sender)


def _state(world: World, booking_ids: list[int]) -> tuple:
    return tuple(world.admin.get_booking(b) for b in booking_ids), _credits(world)


def test_one_entry_record_verifies_and_checks_in(world: World) -> None:
    _, booking_id, _ = book(world)
    at = world.now()
    result = world.gateway.record_gate_events([gate_record(world, RecordKind.CHECK_IN, booking_id, 1, at)])
    assert [e.name for e in result.events] == ["SecondAssociation"]
    booking = world.admin.get_booking(booking_id)
    assert booking.status is ChainBookingStatus.CHECKED_IN and booking.check_in_at == at


def test_replayed_batch_is_a_no_op(world: World) -> None:
    _, booking_id, _ = book(world)
    world.advance(600)
    batch = _enter_and_leave(world, booking_id, 1)
    gateway = world.gateway_account.address
    assert not any(world.admin.is_processed(gateway, r.seq) for r in batch)
    first = world.gateway.record_gate_events(batch)
    assert [e.name for e in first.events] == ["SecondAssociation", "CheckedOut"]
    assert world.admin.last_seq(gateway) == 2
    state = _state(world, [booking_id])
    replay = world.gateway.record_gate_events(batch)
    assert [e.name for e in replay.events] == ["GateRecordSkipped"] * 2
    assert [(e.args["gateway"], e.args["seq"]) for e in replay.events] == [(gateway, 1), (gateway, 2)]
    assert _state(world, [booking_id]) == state
    assert all(world.admin.is_processed(gateway, r.seq) for r in batch)


def test_crash_mid_sync_then_resubmit_everything_applies_each_record_once(world: World) -> None:
    rental_id, first, start = book(world)
    second = world.stranger.request_rental(rental_id, start + 2 * HOUR, start + 3 * HOUR,
                                           world.commitment("M-XY 9"))
    booking_ids = [first, second.return_value]
    world.advance(600)
    now = world.now()
    batch = _enter_and_leave(world, booking_ids[0], 1) + [
        gate_record(world, RecordKind.CHECK_IN, booking_ids[1], 10, now, world.commitment("M-XY 9"))]
    world.gateway.record_gate_events(batch[:1])  # the gateway "crashed" after sending this part
    resubmitted = world.gateway.record_gate_events(batch)  # and resends the whole backlog on restart
    assert [e.name for e in resubmitted.events] == ["GateRecordSkipped", "CheckedOut", "GateRecordRejected"]
    # booking 2 starts in two hours: its check-in is outside the window, rejected, not lost
    assert resubmitted.one("GateRecordRejected").args["reason"] == RejectReason.OUTSIDE_WINDOW
    assert world.admin.get_booking(booking_ids[0]).status is ChainBookingStatus.CHECKED_OUT
    world.stranger.settle(booking_ids)
    assert world.admin.get_booking(booking_ids[0]).status is ChainBookingStatus.SETTLED
    assert sum(_credits(world)) == world.admin.get_booking(booking_ids[0]).escrow  # settled exactly once
    world.stranger.settle(booking_ids)  # settling again changes nothing
    assert sum(_credits(world)) == world.admin.get_booking(booking_ids[0]).escrow


def test_invalid_records_are_rejected_without_reverting_the_batch(world: World) -> None:
    _, booking_id, _ = book(world)
    world.advance(600)
    now = world.now()
    other_plate = world.commitment("X-YZ 1")
    wrong_plate = gate_record(world, RecordKind.CHECK_IN, booking_id, 1, now, other_plate)
    unknown = gate_record(world, RecordKind.CHECK_IN, 4242, 2, now)
    too_early = gate_record(world, RecordKind.CHECK_OUT, booking_id, 3, now)  # not checked in yet
    future = gate_record(world, RecordKind.CHECK_IN, booking_id, 4, now + 3600)
    bad_kind = GateRecord(5, 7, booking_id, world.commitment(), now)  # type: ignore[arg-type]
    good = gate_record(world, RecordKind.CHECK_IN, booking_id, 6, now)
    result = world.gateway.record_gate_events([wrong_plate, unknown, too_early, future, bad_kind, good])
    rejected = [(e.args["seq"], e.args["bookingId"], e.args["reason"])
                for e in result.named("GateRecordRejected")]
    assert rejected == [
        (1, booking_id, RejectReason.COMMITMENT_MISMATCH),
        (2, 4242, RejectReason.UNKNOWN_BOOKING),
        (3, booking_id, RejectReason.BAD_STATE),
        (4, booking_id, RejectReason.BAD_TIMESTAMP),
        (5, booking_id, RejectReason.UNKNOWN_KIND),
    ]
    assert result.one("SecondAssociation").args["bookingId"] == booking_id
    assert world.admin.get_booking(booking_id).status is ChainBookingStatus.CHECKED_IN
    # rejected records are processed too (the high-water mark passed them), so the gateway never loops
    assert world.admin.last_seq(world.gateway_account.address) == 6
    again = world.gateway.record_gate_events([wrong_plate])
    assert [e.name for e in again.events] == ["GateRecordSkipped"]


def test_gateway_of_another_lot_is_rejected_per_record(world: World) -> None:
    _, booking_id, _ = book(world)
    record = gate_record(world, RecordKind.CHECK_IN, booking_id, 1, world.now())
    result = world.other_gateway.record_gate_events([record])
    assert result.one("GateRecordRejected").args["reason"] == RejectReason.WRONG_LOT
    assert world.admin.get_booking(booking_id).status is ChainBookingStatus.REQUESTED
    assert result.named("SecondAssociation") == []


def test_check_in_outside_the_booked_window_is_rejected(world: World) -> None:
    _, booking_id, start = book(world, hours=1)
    early = gate_record(world, RecordKind.CHECK_IN, booking_id, 1, start - 16 * 60)
    world.advance(start + HOUR - world.now())
    late = gate_record(world, RecordKind.CHECK_IN, booking_id, 2, start + HOUR)
    result = world.gateway.record_gate_events([early, late])
    assert [e.args["reason"] for e in result.named("GateRecordRejected")] == [RejectReason.OUTSIDE_WINDOW] * 2
    assert world.admin.get_booking(booking_id).status is ChainBookingStatus.REQUESTED


def test_second_check_out_with_a_new_number_does_not_settle_twice(world: World) -> None:
    _, booking_id, _ = book(world)
    world.advance(600)
    world.gateway.record_gate_events(_enter_and_leave(world, booking_id, 1))
    world.owner.settle([booking_id])
    owner_credit = world.admin.pending_withdrawal(world.owner.sender)
    extra = gate_record(world, RecordKind.CHECK_OUT, booking_id, 99, world.now())
    result = world.gateway.record_gate_events([extra])
    assert result.one("GateRecordRejected").args["reason"] == RejectReason.BAD_STATE
    world.owner.settle([booking_id])
    assert world.admin.pending_withdrawal(world.owner.sender) == owner_credit


def test_settlement_charges_from_booked_start_and_rounds_up(world: World) -> None:
    _, booking_id, start = book(world, hours=2)
    world.advance(start - world.now() + 10)
    records = [gate_record(world, RecordKind.CHECK_IN, booking_id, 1, start + 5),
               gate_record(world, RecordKind.CHECK_OUT, booking_id, 2, start + 7)]
    world.gateway.record_gate_events(records)
    settled = world.stranger.settle([booking_id]).one("Settled").args
    expected = (PRICE_PER_HOUR * 7 + 3599) // 3600
    assert (settled["toOwner"], settled["refund"]) == (expected, 2 * PRICE_PER_HOUR - expected)


def test_denied_record_is_logged_with_commitment_only(world: World) -> None:
    record = gate_record(world, RecordKind.DENIED, 0, 1, world.now(), world.commitment("UNKNOWN 1"))
    result = world.gateway.record_gate_events([record])
    assert result.one("GateDenied").args == {"bookingId": 0, "gateway": world.gateway_account.address,
                                             "seq": 1, "plateCommitment": world.commitment("UNKNOWN 1"),
                                             "timestamp": record.timestamp}
    assert world.admin.is_processed(world.gateway_account.address, 1)


def test_large_batch_in_one_transaction(world: World) -> None:
    bookings = []
    for n in range(12):
        space = world.owner.register_space(world.lot, f"L-2/B{n + 1:02d}").return_value
        world.admin.approve_space(space)
        start = world.now() + 600
        rental = world.owner.create_rental_event(space, start, start + 2 * HOUR, PRICE_PER_HOUR).return_value
        booked = world.renter.request_rental(rental, start, start + HOUR, world.commitment())
        bookings.append(booked.return_value)
    now = world.now()
    batch = [gate_record(world, RecordKind.CHECK_IN, b, i + 1, now) for i, b in enumerate(bookings)]
    result = world.gateway.record_gate_events(batch)
    assert [e.args["bookingId"] for e in result.named("SecondAssociation")] == bookings
    assert {world.admin.get_booking(b).status for b in bookings} == {ChainBookingStatus.CHECKED_IN}
