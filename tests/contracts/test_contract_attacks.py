"""The attacks of issue #16 (tried on contract v1, 2026-12-01) replayed on a real anvil: each now fails.

1. free parking: admitted in the grace period before the window, then cancel for a full refund;
3. cross-lot pre-emption: another lot's gateway copies a pending batch from the mempool and gets it
   mined first (manual mining orders the two transactions);
4. listing griefing: 32 one-second bookings fill a listing;
and the races of the same kind: expire vs a late check-in, settleOverdue vs a late check-out, the
owner cancelling the listing while the car may be inside.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rental_world import HOUR, PRICE_PER_HOUR, RECORD_DEADLINE, World, book, gate_record, listing, reverts

from edge.chain.contract import (
    ChainBookingStatus,
    GateRecord,
    RecordKind,
    RejectReason,
    record_words,
)

GRACE = 15 * 60



def test_early_entry_then_cancel_no_longer_parks_for_free(world: World) -> None:
    rental_id, booking_id, start = book(world)  # starts in 10 minutes: inside the grace period now
    entered_at = world.now()
    assert start - GRACE <= entered_at < start
    with reverts("TooLateToCancel"):  # the car may be inside even before its record lands
        world.renter.cancel_booking(booking_id)
    record = gate_record(world, RecordKind.CHECK_IN, booking_id, 1, entered_at)
    entry = world.gateway.record_gate_events([record])
    assert entry.named("GateRecordRejected") == [] and entry.one("SecondAssociation")
    with reverts("BookingNotActive"):  # once checked in, cancelling is out of the question
        world.renter.cancel_booking(booking_id)
    with reverts("HasCheckedInBooking"):
        world.owner.cancel_rental_event(rental_id)
    world.advance(start + HOUR - world.now())
    world.gateway.record_gate_events([gate_record(world, RecordKind.CHECK_OUT, booking_id, 2, start + HOUR)])
    world.stranger.settle([booking_id])
    assert world.admin.pending_withdrawal(world.owner.sender) == PRICE_PER_HOUR  # the owner is paid
    assert world.admin.pending_withdrawal(world.renter.sender) == PRICE_PER_HOUR  # unused hour back


def test_owner_cannot_cancel_the_listing_once_a_booked_car_may_be_inside(world: World) -> None:
    rental_id, booking_id, _ = book(world)
    with reverts("TooLateToCancel") as info:
        world.owner.cancel_rental_event(rental_id)
    assert info.value.args_ == (booking_id,)
    assert world.admin.get_booking(booking_id).status is ChainBookingStatus.REQUESTED


@contextmanager
def _manual_mining(world: World) -> Iterator[None]:
    world.w3.provider.make_request("evm_setAutomine", [False])
    try:
        yield
    finally:
        world.w3.provider.make_request("evm_setAutomine", [True])


def _signed(world: World, account, data: str, tip: int) -> bytes:  # type: ignore[no-untyped-def]
    w3 = world.w3
    tx = {"to": world.admin.address, "data": data, "value": 0, "gas": 500_000, "chainId": w3.eth.chain_id,
          "nonce": w3.eth.get_transaction_count(account.address, "pending"), "type": 2,
          "maxFeePerGas": 100 * 10**9, "maxPriorityFeePerGas": tip}
    return bytes(account.sign_transaction(tx).raw_transaction)


def test_cross_lot_preemption_from_the_mempool_cannot_touch_the_victims_records(world: World) -> None:
    _, booking_id, start = book(world)
    now = world.now()
    victim_batch = [gate_record(world, RecordKind.CHECK_IN, booking_id, 1, now)]
    calldata = world.gateway.contract.encode_abi("recordGateEvents", [record_words(victim_batch)])
    attacker = world.other_gateway.sender  # a registered gateway, of another lot
    w3 = world.w3
    with _manual_mining(world):
        victim_raw = _signed(world, world.gateway_account, calldata, tip=10**9)
        victim_tx = bytes(w3.eth.send_raw_transaction(victim_raw))
        seen = w3.eth.get_transaction(victim_tx)  # the attacker reads the pending batch ...
        copied = "0x" + bytes(seen["input"]).hex()
        attack_tx = bytes(w3.eth.send_raw_transaction(_signed(world, attacker, copied, tip=50 * 10**9)))
        # ... and gets it mined first: the victim's transaction waits out a block (order made explicit)
        w3.provider.make_request("anvil_dropTransaction", ["0x" + victim_tx.hex()])
        w3.provider.make_request("evm_mine", [])
        w3.eth.send_raw_transaction(victim_raw)  # the victim's uploader rebroadcasts the same bytes
        w3.provider.make_request("evm_mine", [])
    attack = w3.eth.get_transaction_receipt(attack_tx)
    victim = w3.eth.get_transaction_receipt(victim_tx)
    assert attack["blockNumber"] < victim["blockNumber"]  # the copy was mined first
    attack_events = world.admin.decode_logs(attack["logs"])
    assert [(e.name, e.args["gateway"], e.args["reason"]) for e in attack_events] == [
        ("GateRecordRejected", attacker.address, RejectReason.WRONG_LOT)]  # its own namespace, wrong lot
    victim_events = world.admin.decode_logs(victim["logs"])
    assert [e.name for e in victim_events] == ["SecondAssociation"]  # not skipped: applied
    assert world.admin.last_seq(world.gateway_account.address) == 1
    assert world.admin.get_booking(booking_id).status is ChainBookingStatus.CHECKED_IN
    world.advance(start + 2 * HOUR + RECORD_DEADLINE + 1 - world.now())
    with reverts("BookingNotActive"):  # the third party's free refund of a car that parked
        world.stranger.expire_booking(booking_id)


def test_copied_denied_records_land_in_the_attackers_namespace_only(world: World) -> None:
    denied = GateRecord(7, RecordKind.DENIED, 0, world.commitment("ZZ 1"), world.now())
    world.other_gateway.record_gate_events([denied])  # copied ahead of the victim
    mine = world.gateway.record_gate_events([denied])
    assert [e.name for e in mine.events] == ["GateDenied"]  # the victim's record 7 still lands
    assert world.admin.last_seq(world.gateway_account.address) == 7
    assert world.admin.last_seq(world.other_gateway.sender.address) == 7


def test_thirty_two_tiny_bookings_cannot_fill_a_listing(world: World) -> None:
    rental_id, start = listing(world, hours=40)
    with reverts("BookingTooShort") as info:
        world.stranger.request_rental(rental_id, start, start + 1, world.commitment(), value=1)
    assert info.value.args_ == (1, HOUR)
    for n in range(4):  # the per-renter cap: one account holds at most 4 live bookings of a listing
        world.stranger.request_rental(rental_id, start + n * HOUR, start + (n + 1) * HOUR, world.commitment())
    with reverts("TooManyBookingsOfRenter"):
        world.stranger.request_rental(rental_id, start + 4 * HOUR, start + 5 * HOUR, world.commitment())
    real = world.renter.request_rental(rental_id, start + 10 * HOUR, start + 12 * HOUR, world.commitment())
    assert world.admin.get_booking(real.return_value).status is ChainBookingStatus.REQUESTED


def test_expire_cannot_race_a_late_check_in(world: World) -> None:
    _, booking_id, start = book(world)
    entered_at = start + 60  # the gateway admitted the car, then lost its uplink for hours
    world.advance(start + 2 * HOUR + GRACE + 1 - world.now())  # v1 allowed expireBooking from here
    with reverts("NotYetExpired"):
        world.stranger.expire_booking(booking_id)
    late = world.gateway.record_gate_events([
        gate_record(world, RecordKind.CHECK_IN, booking_id, 1, entered_at),
        gate_record(world, RecordKind.CHECK_OUT, booking_id, 2, start + HOUR)])
    assert late.named("GateRecordRejected") == []
    world.stranger.settle([booking_id])
    assert world.admin.pending_withdrawal(world.owner.sender) == PRICE_PER_HOUR
    world.advance(RECORD_DEADLINE)
    with reverts("BookingNotActive"):
        world.stranger.expire_booking(booking_id)


def test_settle_overdue_cannot_race_a_late_check_out(world: World) -> None:
    _, booking_id, start = book(world)
    world.gateway.record_gate_events([gate_record(world, RecordKind.CHECK_IN, booking_id, 1, world.now())])
    world.advance(start + 2 * HOUR + GRACE + 1 - world.now())  # v1 allowed settleOverdue (full price) here
    with reverts("NotYetExpired"):
        world.stranger.settle_overdue(booking_id)
    late = world.gateway.record_gate_events([gate_record(world, RecordKind.CHECK_OUT, booking_id, 2,
                                                         start + 30 * 60)])
    assert late.named("GateRecordRejected") == []
    settled = world.stranger.settle([booking_id]).one("Settled").args
    assert (settled["toOwner"], settled["refund"]) == (PRICE_PER_HOUR // 2, PRICE_PER_HOUR * 3 // 2)
