"""Property tests of the store: outbox invariants under any sequence of operations, reorg rollback
equals replaying only the surviving blocks, nested transactions are atomic."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.store import Booking, GateEventRow, RentalEvent, Store

DESTS = ("chain", "mqtt")
OWNER = "0x" + "11" * 20
RENTER = "0x" + "22" * 20
T0 = 1_790_000_000_000
# Logic, not durability, is under test here: a RAM-backed dir keeps fsync (synchronous=FULL) cheap.
SCRATCH = "/dev/shm" if Path("/dev/shm").is_dir() else None


def gate_event(n: int) -> GateEventRow:
    return GateEventRow(event_id=f"evt-{n:08d}", lane="north", direction="entry", kind="denied",
                     reason="no booking", occurred_at_ms=T0 + n)


ops = st.lists(st.one_of(
    st.tuples(st.just("record"), st.integers(0, 7), st.sets(st.sampled_from(DESTS))),
    st.tuples(st.sampled_from(["in_flight", "failed", "done", "dead"]),
              st.lists(st.integers(1, 20), max_size=4), st.sampled_from(["", "0xref"])),
), max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_outbox_invariants_hold_for_any_operation_sequence(sequence: list[tuple]) -> None:
    with tempfile.TemporaryDirectory(dir=SCRATCH) as tmp, Store(Path(tmp) / "p.sqlite") as store:
        expected: dict[tuple[str, str], None] = {}
        done_refs: dict[int, str] = {}
        for op, arg, extra in sequence:
            if op == "record":
                ev = gate_event(arg)
                first = store.gate_event(ev.event_id) is None
                assert store.record_gate_event(ev, sorted(extra)) is first
                if first:
                    expected |= {(d, ev.event_id): None for d in extra}
            elif op == "in_flight":
                store.mark_outbox_in_flight(arg, extra or None)
            elif op == "failed":
                store.mark_outbox_failed(arg, "err")
            elif op == "dead":
                store.mark_outbox_dead(arg, "poison")
            elif extra:
                store.mark_outbox_done(arg, extra)
            rows = store.conn.execute(
                "SELECT id, destination, event_id, status, ack_ref FROM outbox").fetchall()
            # exactly one row per (destination, event) ever enqueued: nothing lost, nothing twice
            assert sorted((d, e) for _, d, e, _, _ in rows) == sorted(expected)
            for row_id, _, _, status, ack in rows:
                if row_id in done_refs:  # done is final and keeps its confirmation
                    assert (status, ack) == ("done", done_refs[row_id])
                if status == "done":
                    assert ack
                    done_refs[row_id] = ack
            owed = {r[0] for r in rows if r[3] in ("pending", "in_flight")}
            assert {r.id for d in DESTS for r in store.pending_outbox(d, limit=1000)} == owed


chain_logs = st.lists(st.tuples(st.integers(1, 12), st.sampled_from(["b1", "b2", "b3"]),
                                st.sampled_from(["requested", "verified", "checked_in", "cancelled"])),
                      min_size=1, max_size=25)


def bhash(n: int) -> str:
    return "0x" + f"{n:064x}"


def apply(store: Store, logs: list[tuple[int, str, str]]) -> None:
    store.upsert_rental_event(RentalEvent("r1", "s1", "lot", OWNER, T0, T0 + 10**7, 1, "open", 0,
                                          bhash(0), 0))
    for i, (block, bid, status) in enumerate(logs):
        store.upsert_booking(Booking(bid, "r1", "s1", "lot", RENTER, "0x" + "ab" * 32, T0, T0 + 1000, status,
                                     block, bhash(block), i))


def snapshot(store: Store) -> list[tuple]:
    return store.conn.execute("SELECT booking_id, status, block_number, log_index FROM bookings "
                              "ORDER BY booking_id").fetchall()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chain_logs, st.integers(0, 12))
def test_rollback_equals_replaying_only_surviving_blocks(logs: list[tuple[int, str, str]], cut: int) -> None:
    logs = sorted(logs, key=lambda log: log[0])  # logs arrive in block order
    with tempfile.TemporaryDirectory(dir=SCRATCH) as tmp, Store(Path(tmp) / "a.sqlite") as full, \
            Store(Path(tmp) / "b.sqlite") as replay:
        apply(full, logs)
        full.rollback_to_block(cut)
        apply(replay, [log for log in logs if log[0] <= cut])
        assert snapshot(full) == snapshot(replay)
        assert full.integrity_check() == []


def test_nested_transaction_rolls_back_only_the_inner_part(tmp_path: Path) -> None:
    with Store(tmp_path / "n.sqlite") as store:
        with store.transaction():
            store.record_gate_event(gate_event(1), ("mqtt",))
            with pytest.raises(RuntimeError), store.transaction():
                store.record_gate_event(gate_event(2), ("mqtt",))
                raise RuntimeError("inner failure")
        assert store.gate_event("evt-00000001") is not None
        assert store.gate_event("evt-00000002") is None
        with pytest.raises(RuntimeError), store.transaction():
            store.record_gate_event(gate_event(3), ("mqtt",))
            raise RuntimeError("outer failure")
        assert store.gate_event("evt-00000003") is None and store.counts()["outbox"] == 1
