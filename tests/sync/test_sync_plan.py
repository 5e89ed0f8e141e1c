"""Pure sync decisions: windows, reorg ancestor or node behind, lot of a log, batches, receipts that do not
come, transaction age, fees, replacement bump, backoff."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from web3 import Web3

from edge.chain.contract import (
    DecodedEvent,
    GateRecord,
    RecordKind,
    RejectReason,
    load_artifact,
    record_words,
)
from edge.chain.syncplan import (
    MAX_REJECTED_RETRIES,
    Fees,
    Fork,
    NodeBehind,
    RecordError,
    RecordOutcome,
    assemble_batch,
    backlog_cost_wei,
    backoff_delay,
    bumped_fees,
    common_ancestor,
    gate_record,
    initial_fees,
    latest_stamp,
    lot_bytes,
    may_have_landed,
    of_lot,
    plan_windows,
    record_batch_calldata,
    record_outcomes,
    retry_rejected,
    tx_age_ms,
    windows_left,
)
from edge.store.rows import ChainBlock, OutboxRow
from edge.tools.anvil import dev_account

GATEWAY = dev_account(5).address
COMMIT = "0x" + "ab" * 32


def _row(row_id: int, **payload: object) -> OutboxRow:
    """A 'chain' outbox row as the store writes it: the gate event's fields."""
    body = {"event_id": f"EVENT{row_id:06d}", "lane": "entry-1", "direction": "entry", "kind": "denied",
            "reason": "denied,no_booking", "occurred_at_ms": 1_700_000_000_000, "booking_id": None,
            "plate_commitment": None} | payload
    return OutboxRow(id=row_id, destination="chain", event_id=f"EVENT{row_id:06d}", payload=body,
                     created_at_ms=0, status="pending", attempts=0, sent_ref=None, ack_ref=None,
                     last_error=None)


@given(st.integers(0, 10_000), st.integers(-1, 10_000), st.integers(1, 3000))
def test_windows_cover_the_range_exactly_once_within_the_size(first: int, last: int, size: int) -> None:
    windows = plan_windows(first, last, size)
    covered = [n for a, b in windows for n in range(a, b + 1)]
    assert covered == list(range(first, last + 1))
    assert all(b - a + 1 <= size for a, b in windows)


@given(st.integers(0, 10_000), st.integers(-1, 10_000), st.integers(1, 3000), st.integers(0, 20))
def test_a_limit_takes_the_first_windows_and_counts_the_rest(first: int, last: int, size: int,
                                                             limit: int) -> None:
    every = list(plan_windows(first, last, size))
    taken = list(plan_windows(first, last, size, limit))
    assert taken == every[:limit]
    after = taken[-1][1] + 1 if taken else first
    assert windows_left(after, last, size) == len(every) - len(taken)


def test_windows_of_an_absurd_head_are_planned_lazily() -> None:
    assert list(plan_windows(7, 2**62, 1000, limit=2)) == [(7, 1006), (1007, 2006)]
    assert windows_left(0, 2**62, 1) == 2**62 + 1  # counted, never listed


def test_window_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="window size"):
        plan_windows(0, 10, 0)


def _blocks(numbers: list[int], tag: str) -> list[ChainBlock]:
    return [ChainBlock(n, "0x" + f"{tag}{n:x}".rjust(64, "0"), "0x" + "0" * 64) for n in numbers]


def test_common_ancestor_is_the_newest_stored_block_the_chain_still_has() -> None:
    stored = _blocks([10, 12, 15, 20], "a")
    same = {b.number: b.hash for b in stored}
    assert common_ancestor(stored, 20, same.get) is None  # no reorg
    forked = dict(same) | {15: "0x" + "f" * 64, 20: "0x" + "e" * 64}
    assert common_ancestor(stored, 25, forked.get) == Fork(12)
    everything = {n: "0x" + "e" * 64 for n in same}
    assert common_ancestor(stored, 20, everything.get) == Fork(-1)  # everything orphaned
    assert common_ancestor([], 0, lambda n: None) is None


def test_a_node_without_our_blocks_is_behind_not_a_reorg() -> None:
    stored = _blocks([10, 12, 15, 20], "a")
    same = {b.number: b.hash for b in stored}
    assert common_ancestor(stored, 17, same.get) == NodeBehind(20, 17)  # head below our newest block
    lagging = {n: h for n, h in same.items() if n <= 12}
    assert common_ancestor(stored, 20, lagging.get) == NodeBehind(20, 20)  # it says 20, has not got it
    forked_then_missing = dict(same) | {20: "0x" + "e" * 64}
    del forked_then_missing[15]
    assert common_ancestor(stored, 20, forked_then_missing.get) == NodeBehind(15, 20)  # never roll back
    assert common_ancestor(stored, 20, lambda n: None) == NodeBehind(20, 20)


@given(st.lists(st.integers(0, 500), min_size=1, max_size=30, unique=True), st.integers(0, 500))
def test_common_ancestor_matches_a_fork_at_any_height(numbers: list[int], fork: int) -> None:
    stored = _blocks(numbers, "a")
    chain = {b.number: (b.hash if b.number <= fork else "0x" + "9" * 64) for b in stored}
    below = [n for n in numbers if n <= fork]
    expected = None if max(numbers) <= fork else Fork(max(below) if below else -1)
    assert common_ancestor(stored, max(numbers), chain.get) == expected


@given(st.lists(st.integers(0, 500), min_size=1, max_size=30, unique=True), st.integers(0, 500))
def test_a_lagging_node_never_causes_a_rollback(numbers: list[int], head: int) -> None:
    stored = _blocks(numbers, "a")
    chain = {b.number: b.hash for b in stored if b.number <= head}  # the same chain, only shorter
    verdict = common_ancestor(stored, head, chain.get)
    assert verdict is None if max(numbers) <= head else verdict == NodeBehind(max(numbers), head)


def test_only_logs_of_this_lot_are_of_this_lot() -> None:
    lot = lot_bytes("LOT-1")
    assert of_lot({"lotId": lot, "bookingId": 1}, lot)
    assert not of_lot({"lotId": lot_bytes("LOT-2")}, lot)
    assert not of_lot({"bookingId": 1}, lot) and not of_lot({"lotId": "LOT-1"}, lot)


def test_a_transaction_without_receipt_is_waited_for_unless_known_not_to_have_landed() -> None:
    grace = 600_000
    assert may_have_landed("dropped", False, mined_per_node=True, waited_ms=10 * grace, grace_ms=grace)
    assert may_have_landed("dropped", False, mined_per_node=False, waited_ms=grace - 1, grace_ms=grace)
    assert may_have_landed("mined", False, mined_per_node=False, waited_ms=0, grace_ms=grace)
    assert not may_have_landed("dropped", False, mined_per_node=False, waited_ms=grace, grace_ms=grace)
    assert not may_have_landed("replaced", False, mined_per_node=True, waited_ms=0, grace_ms=grace)
    assert not may_have_landed("dropped", True, mined_per_node=True, waited_ms=0, grace_ms=grace)


def test_age_of_a_transaction_survives_a_clock_step_back() -> None:
    assert tx_age_ms(now_ms=100_000, sent_at_ms=40_000, monotonic_age_ms=None) == 60_000
    assert tx_age_ms(now_ms=100_000, sent_at_ms=86_500_000, monotonic_age_ms=None) == 0  # never negative
    assert tx_age_ms(now_ms=100_000, sent_at_ms=99_000, monotonic_age_ms=61_000) == 61_000  # this process
    assert tx_age_ms(now_ms=100_000, sent_at_ms=0, monotonic_age_ms=5_000) == 100_000


def test_gate_record_maps_kinds_bookings_commitments_and_seconds() -> None:
    record = gate_record(_row(1, kind="check_in", booking_id="42", plate_commitment=COMMIT,
                              occurred_at_ms=1_700_000_000_999).gate_event(), seq=7)
    assert record == GateRecord(7, RecordKind.CHECK_IN, 42, bytes.fromhex("ab" * 32), 1_700_000_000)
    denied = gate_record(_row(2).gate_event(), seq=8)
    assert denied.booking_id == 0 and denied.plate_commitment == b"\0" * 32


def test_gate_record_is_never_stamped_beyond_the_allowed_skew() -> None:
    chain_time = 1_700_000_000
    ahead = _row(1, occurred_at_ms=(chain_time + 600) * 1000)  # gateway clock 10 min fast
    assert gate_record(ahead.gate_event(), 1, latest_stamp(chain_time)).timestamp == chain_time + 300
    on_time = _row(2, occurred_at_ms=(chain_time - 5) * 1000)
    assert gate_record(on_time.gate_event(), 2, latest_stamp(chain_time)).timestamp == chain_time - 5


@pytest.mark.parametrize("payload", [{"booking_id": "x"}, {"booking_id": str(2**64)},
                                     {"occurred_at_ms": 2**40 * 1000}])
def test_events_the_contract_cannot_hold_are_named_record_errors(payload: dict) -> None:
    with pytest.raises(RecordError, match="gate event EVENT000007"):
        gate_record(_row(7, **payload).gate_event(), seq=1)


@pytest.mark.parametrize("payload", [{"kind": "teleported"}, {"plate_commitment": "0x12"},
                                     {"occurred_at_ms": None}, {"booking_id": "x"},
                                     {"booking_id": str(2**64)}, {"lane": ""}, {"extra": 1}])
def test_rows_that_are_no_chain_record_are_poison_naming_the_row(payload: dict) -> None:
    batch = assemble_batch([_row(7, **({"kind": "check_in", "booking_id": "1"} | payload))],
                           frozenset({"check_in"}), {7: 1})
    assert not batch.records and not batch.skipped
    assert [(row.id, "outbox row 7" in why) for row, why in batch.poison] == [(7, True)]


def test_kinds_the_contract_has_no_record_of_are_skipped_not_poison() -> None:
    batch = assemble_batch([_row(1, kind="manual"), _row(2, kind="verified", booking_id="5")],
                           frozenset({"manual", "verified"}), {})
    assert [r.id for r in batch.skipped] == [1, 2] and not batch.poison and not batch.records


def test_batch_skips_other_kinds_folds_verified_and_isolates_poison() -> None:
    rows = [_row(1), _row(2, kind="fault"), _row(3, booking_id="nope"), _row(4, kind="check_in",
            booking_id="5", plate_commitment=COMMIT), _row(5, kind="verified", booking_id="5",
                                                           plate_commitment=COMMIT)]
    seqs = {1: 10, 3: 11, 4: 12}
    batch = assemble_batch(rows, frozenset({"denied", "check_in", "verified"}), seqs)
    assert [r.id for r in batch.rows] == [1, 4] and [r.seq for r in batch.records] == [10, 12]
    assert [r.id for r in batch.skipped] == [2, 5]  # 'verified' is folded into the check-in record
    assert [(r.id, "booking_id" in why) for r, why in batch.poison] == [(3, True)]
    no_denials = assemble_batch(rows, frozenset({"check_in"}), seqs)
    assert [r.id for r in no_denials.rows] == [4] and 1 in [r.id for r in no_denials.skipped]
    with pytest.raises(ValueError, match="sequence order"):
        assemble_batch(rows[:1] + rows[3:4], frozenset({"denied", "check_in"}), {1: 12, 4: 10})


def test_calldata_matches_web3s_encoder() -> None:
    contract = Web3().eth.contract(abi=load_artifact()["abi"])
    records = [gate_record(_row(i, booking_id=str(i)).gate_event(), seq=i) for i in range(1, 4)]
    expected = contract.encode_abi("recordGateEvents", [record_words(records)])
    assert "0x" + record_batch_calldata(records).hex() == expected
    assert len(record_batch_calldata(records)) == 4 + 64 + 64 * len(records)  # 64 bytes per record


def _log(name: str, **args: object) -> DecodedEvent:
    return DecodedEvent(name, dict(args), 1, b"\0" * 32, 0)


def test_record_outcomes_read_rejections_and_skips_of_this_gateway_only() -> None:
    other = dev_account(6).address
    bad_state, wrong_lot = int(RejectReason.BAD_STATE), int(RejectReason.WRONG_LOT)
    events = [_log("GateRecordSkipped", gateway=GATEWAY, seq=1),
              _log("GateRecordRejected", gateway=GATEWAY, seq=3, bookingId=5, reason=bad_state),
              _log("GateRecordRejected", gateway=other, seq=2, bookingId=5, reason=wrong_lot),
              _log("SecondAssociation", bookingId=5, lotId=b"", rentalId=1, timestamp=0)]
    assert record_outcomes(GATEWAY, [1, 2, 3], events) == {
        1: RecordOutcome("skipped"), 2: RecordOutcome("applied"), 3: RecordOutcome("rejected", "BAD_STATE")}


def test_only_rejections_a_retry_can_fix_are_retried_and_only_a_few_times() -> None:
    assert retry_rejected("BAD_TIMESTAMP", 1) and retry_rejected("UNKNOWN_BOOKING", MAX_REJECTED_RETRIES)
    assert not retry_rejected("UNKNOWN_BOOKING", MAX_REJECTED_RETRIES + 1)
    for reason in ("BAD_STATE", "WRONG_LOT", "COMMITMENT_MISMATCH", "OUTSIDE_WINDOW"):
        assert not retry_rejected(reason, 1)


def test_backlog_cost_counts_records_and_one_base_fee_per_batch() -> None:
    assert backlog_cost_wei(0, 15_000, 10, 20) == 0
    assert backlog_cost_wei(21, 15_000, 10, 20) == (21 * 15_000 + 2 * 21_000) * 10


@given(st.integers(0, 10**12), st.integers(0, 10**11), st.integers(1, 10**12))
def test_fees_never_exceed_the_cap(base: int, tip: int, cap: int) -> None:
    fees = initial_fees(base, tip, cap)
    assert fees.max_fee <= cap and fees.priority_fee <= min(tip, cap)
    if 2 * base + tip <= cap:
        assert fees == Fees(2 * base + tip, tip)


@given(st.integers(1, 10**11), st.integers(0, 10**10), st.integers(0, 10**11), st.integers(1, 10**12))
def test_bump_beats_the_old_fees_by_an_eighth_or_refuses_at_the_cap(old_max: int, old_tip: int, base: int,
                                                                     cap: int) -> None:
    old = Fees(old_max, min(old_tip, old_max))
    bumped = bumped_fees(old, base, old.priority_fee, cap)
    # Refused exactly when the smallest valid bump (+12.5% on either fee) would go over the cap.
    assert (bumped is None) == (old.max_fee * 9 > cap * 8 or old.priority_fee * 9 > cap * 8), (old, bumped)
    if bumped is None:
        return
    assert bumped.max_fee * 8 >= old.max_fee * 9 and bumped.priority_fee * 8 >= old.priority_fee * 9
    assert bumped.max_fee <= cap and bumped.priority_fee <= bumped.max_fee


def test_bump_refused_when_the_cap_is_reached() -> None:
    assert bumped_fees(Fees(100, 10), base_fee=10, priority_fee=10, cap=105) is None


def test_backoff_grows_to_the_cap_with_jitter_from_the_injected_rng() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(n, 1.0, 60.0, rng) for n in range(1, 12)]
    steps = [min(60.0, 2.0 ** (n - 1)) for n in range(1, 12)]  # 1, 2, 4, ... 32, then the 60 s cap
    assert all(step / 2 <= d <= step for d, step in zip(delays, steps, strict=True)), delays
    assert all(30.0 <= d <= 60.0 for d in delays[7:])
    again = random.Random(1)  # the jitter comes from the injected rng only: same seed, same delays
    assert delays == [backoff_delay(n, 1.0, 60.0, again) for n in range(1, 12)]
    other = random.Random(2)  # and it is jitter: another seed moves them
    assert delays != [backoff_delay(n, 1.0, 60.0, other) for n in range(1, 12)]


@given(st.integers(0, 100), st.floats(0.01, 10), st.floats(0.01, 600))
def test_backoff_stays_within_half_step_and_step(failures: int, base: float, cap: float) -> None:
    step = min(cap, base * 2 ** max(failures - 1, 0))
    assert step / 2 <= backoff_delay(failures, base, cap, random.Random(failures)) <= step


_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=80)
_JSON = st.recursive(_SCALARS,
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                 max_size=3), max_leaves=6)


@given(st.dictionaries(st.sampled_from(["kind", "booking_id", "plate_commitment", "occurred_at_ms", "x"]),
                       _JSON | st.sampled_from(["denied", "check_in", COMMIT, "12", "-1"])))
def test_any_outbox_payload_becomes_a_record_a_skip_or_named_poison(payload: dict) -> None:
    row = _row(3, **payload)
    batch = assemble_batch([row], frozenset({"denied", "check_in"}), {3: 3})
    assert len(batch.records) + len(batch.skipped) + len(batch.poison) == 1
    if batch.poison:
        assert "outbox row 3" in batch.poison[0][1]
    for record in batch.records:
        head, commitment = record.words()  # encodable: every field inside its packed width
        assert head >> 192 == 3 and commitment.bit_length() <= 256
