"""The store retention (``Store.prune``, ``[store] retention_days``) on a real SQLite file: old delivered
rows go, undelivered and recent ones stay, who is inside is rebuilt the same, batches bound the write lock."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.cli import main
from edge.clock import TrustedClock
from edge.config import StoreConfig
from edge.daemon.records import presence_from_events
from edge.daemon.retention import store_prune_loop
from edge.store import Booking, GateEventRow, ManualActionRow, RentalEvent, Store

DAY = 86_400_000
NOW = 1_830_000_000_000  # 2027-12
OLD = NOW - 400 * DAY  # past a 365-day retention
RECENT = NOW - 10 * DAY
CUTOFF = NOW - 365 * DAY
ID = "event-0-"  # event ids are 8..64 characters: ID + a short name


def commitment(n: int) -> str:
    return "0x" + f"{n:064x}"


def event(eid: str, at: int, kind: str = "denied", direction: str = "entry", vehicle: int = 1,
          booking: str | None = None) -> GateEventRow:
    return GateEventRow(event_id=ID + eid, lane="north", direction=direction, kind=kind, booking_id=booking,
                        plate_commitment=commitment(vehicle), plate_masked="AB***3", confidence=0.9,
                        reason="test", occurred_at_ms=at)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "s.sqlite", clock=lambda: NOW) as s:
        yield s


def record(store: Store, row: GateEventRow, *states: str) -> None:
    """``row`` queued for one destination per state given, each row then put in that state at the time of
    the event (a row changed after the cutoff keeps its event: test_a_row_changed_after_the_cutoff_...)."""
    destinations = [f"d{i}" for i in range(len(states))]
    store.record_gate_event(row, destinations)
    clock, store.clock = store.clock, lambda: row.occurred_at_ms
    try:
        _mark(store, row, destinations, states)
    finally:
        store.clock = clock


def _mark(store: Store, row: GateEventRow, destinations: list[str], states: tuple[str, ...]) -> None:
    for destination, state in zip(destinations, states, strict=True):
        found = store.outbox_row(destination, row.event_id)
        assert found is not None
        mark = {"done": lambda ids: store.mark_outbox_done(ids, "ack"),
                "in_flight": lambda ids: store.mark_outbox_in_flight(ids, "0xsent"),
                "rejected": lambda ids: store.mark_outbox_rejected(ids, "BAD_STATE"),
                "dead": lambda ids: store.mark_outbox_dead(ids, "poison"),
                "pending": lambda ids: None}[state]
        mark([found.id])


def ids(store: Store, table: str = "gate_events", key: str = "event_id") -> set[str]:
    return {str(k).removeprefix(ID) for (k,) in store.conn.execute(f"SELECT {key} FROM {table}")}


def test_old_delivered_rows_go_and_undelivered_or_recent_ones_stay(store: Store) -> None:
    record(store, event("old-delivered", OLD), "done", "done")
    record(store, event("old-unqueued", OLD))  # chain and MQTT off: nothing to deliver
    for state in ("pending", "in_flight", "rejected", "dead"):
        record(store, event(f"old-{state}", OLD), "done", state)  # one destination done, one not
    record(store, event("recent", RECENT), "done", "done")
    pruned = store.prune(CUTOFF)
    kept = {"old-pending", "old-in_flight", "old-rejected", "old-dead", "recent"}
    assert ids(store) == kept
    assert ids(store, "outbox") == kept  # an undelivered event keeps its delivered rows too
    assert (pruned.gate_events, pruned.outbox, pruned.kept) == (2, 2, 4)
    # parkgate_gate_events_total is a counter (edge/daemon/samples.py): the retention must not lower it
    assert store.counts()["gate_events_recorded"] == 7
    record(store, event("late-delivery", OLD), "pending")  # delivered later: goes at the next run
    store.mark_outbox_done([r.id for r in store.pending_outbox("d0")], "ack")
    assert store.prune(CUTOFF).gate_events == 1 and "late-delivery" not in ids(store)


def test_the_append_only_tables_take_a_delete_only_from_the_retention(store: Store) -> None:
    record(store, event("old-pending", OLD), "pending")
    store.record_manual_action(ManualActionRow(at_ms=RECENT, lane="north", action="open", source="socket",
                                               operator="ops", reason="stuck", result="opened"))
    for table in ("gate_events", "manual_actions"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only: DELETE"):
            store.conn.execute(f"DELETE FROM {table}")
    with store.transaction() as c:  # even inside a pruning transaction: not undelivered or recent rows
        c.execute("INSERT INTO store_retention (id, cutoff_ms) VALUES (1, ?)", (CUTOFF,))
        for table in ("gate_events", "manual_actions"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only: DELETE"):
                c.execute(f"DELETE FROM {table}")
        c.execute("DELETE FROM store_retention")
    assert store.counts()["gate_events"] == 1


def inside(store: Store) -> dict[str, int]:
    """Who is inside as the daemon rebuilds it at start (the gate log, oldest first)."""
    rows = [row for _, row in store.gate_events(limit=10_000)]
    return {c: s.entered_ms for c, s in presence_from_events(rows).inside.items()}


def test_who_is_inside_is_rebuilt_the_same_after_the_retention(store: Store) -> None:
    entry, leave = {"kind": "check_in"}, {"kind": "check_out", "direction": "exit"}
    record(store, event("v1-in", OLD, vehicle=1, **entry), "done")  # parked for over a year: still inside
    record(store, event("v2-in", OLD, vehicle=2, **entry), "done")  # came and went long ago
    record(store, event("v2-out", OLD + 1, vehicle=2, **leave), "done")
    record(store, event("v3-in", OLD, vehicle=3, **entry), "done")  # came, went, came back: inside
    record(store, event("v3-out", OLD + 1, vehicle=3, **leave), "done")
    record(store, event("v3-in-again", OLD + 2, vehicle=3, **entry), "done")
    record(store, event("v4-in", OLD, vehicle=4, **entry), "pending")  # its entry is kept (undelivered) ...
    record(store, event("v4-out", OLD + 1, vehicle=4, **leave), "done")  # ... so its exit must stay too
    record(store, event("v5-in", OLD, vehicle=5, **entry), "done")  # left recently
    record(store, event("v5-out", RECENT, vehicle=5, **leave), "done")
    before = inside(store)
    assert set(before) == {commitment(1), commitment(3)}
    store.prune(CUTOFF, batch=2)
    assert inside(store) == before
    assert ids(store) == {"v1-in", "v3-in-again", "v4-in", "v4-out", "v5-out"}


def test_a_booking_not_settled_keeps_its_gate_events(store: Store) -> None:
    block = {"block_number": 1, "block_hash": "0x" + "ab" * 32, "log_index": 0}
    where = {"space_id": "s1", "lot_id": "lot", "window_start_ms": OLD, "window_end_ms": OLD + DAY}
    store.upsert_rental_event(RentalEvent(rental_event_id="r1", owner="0x" + "11" * 20, price_wei=1,
                                          status="booked", **where, **block))  # type: ignore[arg-type]
    for bid, status in (("b-open", "verified"), ("b-done", "checked_out")):
        store.upsert_booking(Booking(booking_id=bid, rental_event_id="r1", renter="0x" + "22" * 20,
                                     vehicle_commitment=commitment(9), status=status,
                                     **where, **block))  # type: ignore[arg-type]
        record(store, event(f"{bid}-fault", OLD, kind="fault", booking=bid), "done")
    store.prune(CUTOFF)
    assert ids(store) == {"b-open-fault"}


def test_settled_bookings_and_unused_rental_events_go_with_their_reorg_history(tmp_path: Path) -> None:
    now = [OLD]  # the store's clock: when each chain log was applied
    with Store(tmp_path / "s.sqlite", clock=lambda: now[0]) as s:
        def chain_rows(rental: str, end: int, bookings: dict[str, str]) -> None:
            block = {"block_number": 1, "block_hash": "0x" + "ab" * 32, "log_index": 0}
            where = {"space_id": "s1", "lot_id": "lot", "window_start_ms": end - DAY, "window_end_ms": end}
            s.upsert_rental_event(RentalEvent(rental_event_id=rental, owner="0x" + "11" * 20, price_wei=1,
                                              status="booked", **where, **block))  # type: ignore[arg-type]
            for bid, status in bookings.items():
                s.upsert_booking(Booking(booking_id=bid, rental_event_id=rental, renter="0x" + "22" * 20,
                                         vehicle_commitment=commitment(9), status=status,
                                         **where, **block))  # type: ignore[arg-type]

        chain_rows("r-settled", OLD, {"b-settled": "checked_out", "b-cancelled": "cancelled"})
        chain_rows("r-inside", OLD, {"b-inside": "checked_in"})  # never checked out: it stays, and its rental
        chain_rows("r-empty", OLD, {})
        now[0] = RECENT
        chain_rows("r-late", OLD, {"b-late": "cancelled"})  # its last log came recently
        chain_rows("r-recent", RECENT, {"b-recent": "checked_out"})
        dry = s.prune(CUTOFF, dry_run=True)
        pruned = s.prune(CUTOFF)
        assert ids(s, "bookings", "booking_id") == {"b-inside", "b-late", "b-recent"}
        assert ids(s, "rental_events", "rental_event_id") == {"r-inside", "r-late", "r-recent"}
        kept = {"b-inside", "b-late", "b-recent", "r-inside", "r-late", "r-recent"}
        assert ids(s, "chain_history", "entity_id") == kept  # the deleted ones' reorg history went too
        assert (dry.bookings, dry.rental_events) == (pruned.bookings, pruned.rental_events) == (2, 2)


def test_record_numbers_keep_the_highest_and_settled_transactions_go(store: Store) -> None:
    for n in range(3):
        record(store, event(f"e{n}", OLD), "done")
    record(store, event("e-wait", OLD), "in_flight")
    outbox = {row.event_id.removeprefix(ID): row.id for row in store.outbox_rows(range(1, 5))}
    number = {"e0": 1, "e1": 2, "e2": 5, "e-wait": 4}  # e2, delivered, holds the highest number
    with store.transaction() as c:
        c.executemany("INSERT INTO chain_seqs (outbox_id, seq) VALUES (?, ?)",
                      [(outbox[e], seq) for e, seq in number.items()])
        for tx, status, rows in (("0xa1", "mined", ["e0", "e1"]), ("0xa2", "replaced", ["e2"]),
                                 ("0xa3", "dropped", ["e-wait"]), ("0xa4", "pending", ["e2"])):
            c.execute("INSERT INTO chain_txs (tx_hash, nonce, raw_tx, outbox_ids, max_fee_wei, "
                      "priority_fee_wei, sent_at_ms, status) VALUES (?, 1, '0x', ?, '1', '1', ?, ?)",
                      (tx, json.dumps([outbox[e] for e in rows]), OLD, status))
    pruned = store.prune(CUTOFF)
    assert ids(store) == {"e-wait"}
    # the next record number is assigned above the highest (edge/chain/sync.py _assign_seqs): it stays
    assert sorted(s for (s,) in store.conn.execute("SELECT seq FROM chain_seqs")) == [4, 5]
    # a settled transaction of delivered rows goes; one that carried a row still in flight, or pending, stays
    assert ids(store, "chain_txs", "tx_hash") == {"0xa3", "0xa4"}
    assert (pruned.chain_seqs, pruned.chain_txs) == (2, 2)


def test_manual_actions_go_by_age(store: Store) -> None:
    for at in (OLD, OLD + 1, RECENT):
        store.record_manual_action(ManualActionRow(at_ms=at, lane="north", action="open", source="socket",
                                                   operator="ops", reason="stuck", result="opened"))
    assert store.prune(CUTOFF).manual_actions == 2
    assert [row.at_ms for _, row in store.manual_actions()] == [RECENT]


def test_a_dry_run_counts_what_a_run_deletes_and_changes_nothing(store: Store) -> None:
    for n in range(5):
        record(store, event(f"old-{n}", OLD + n, kind="check_in", vehicle=n % 2), "done")
    record(store, event("old-pending", OLD), "pending")
    store.record_manual_action(ManualActionRow(at_ms=OLD, lane="north", action="open", source="socket",
                                               operator="ops", reason="stuck", result="opened"))
    before = store.counts()
    dry = store.prune(CUTOFF, batch=2, dry_run=True)
    assert store.counts() == before
    done = store.prune(CUTOFF, batch=2)
    assert (dry.gate_events, dry.outbox, dry.manual_actions, dry.kept) == (3, 3, 1, 3)
    assert (done.gate_events, done.outbox, done.manual_actions, done.kept) == (3, 3, 1, 3)


def test_each_transaction_deletes_one_batch_at_most(store: Store) -> None:
    for n in range(10):
        record(store, event(f"old-{n:02d}", OLD + n), "done")
    watcher = sqlite3.connect(store.path)  # another process's view: what each commit left
    seen: list[int] = []

    def trace(statement: str) -> None:
        if statement.startswith("BEGIN"):
            seen.append(watcher.execute("SELECT count(*) FROM gate_events").fetchone()[0])

    store.conn.set_trace_callback(trace)
    pruned = store.prune(CUTOFF, batch=3)
    store.conn.set_trace_callback(None)
    seen.append(watcher.execute("SELECT count(*) FROM gate_events").fetchone()[0])
    watcher.close()
    assert pruned.gate_events == 10
    steps = [a - b for a, b in zip(seen, seen[1:], strict=False)]
    assert max(steps) <= 3 and sum(steps) == 10, seen


def test_the_daemon_loop_prunes_at_start_with_the_best_time(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Store(path, clock=lambda: NOW) as s:
        record(s, event("old", OLD), "done")
        record(s, event("recent", RECENT), "done")
    clock = TrustedClock(NOW, wall=lambda: 0)  # a Pi booted in 1970: the floor is the best time

    async def once() -> None:
        stop = asyncio.Event()
        config = StoreConfig(retention_days=365)
        task = asyncio.create_task(store_prune_loop(path, config, stop, clock.now_ms))
        while True:
            await asyncio.sleep(0.01)
            with Store(path) as s:
                if s.gate_event(ID + "old") is None:
                    break
        stop.set()
        await task

    asyncio.run(asyncio.wait_for(once(), 10))
    with Store(path) as s:
        assert s.gate_event(ID + "recent") is not None


def test_prune_command_judges_age_with_the_best_time(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    wall = int(time.time() * 1000)
    config = tmp_path / "parkgate.toml"
    config.write_text(f'[gateway]\nstate_dir = "{tmp_path}"\n[store]\nretention_days = 30\n')
    with Store(tmp_path / "parkgate.sqlite", clock=lambda: wall) as s:
        record(s, event("old", wall - 20 * DAY), "done")  # 20 days by the wall clock ...
        record(s, event("new", wall), "done")
        s.raise_clock_floor(wall + 15 * DAY)  # ... but a chain block says 15 days more have passed
    assert main(["store", "prune", "--dry-run", "--config", str(config)]) == 0
    assert "would delete 1 gate_events, 1 outbox" in capsys.readouterr().out
    assert main(["store", "prune", "--config", str(config)]) == 0
    assert "deleted 1 gate_events, 1 outbox" in capsys.readouterr().out
    with Store(tmp_path / "parkgate.sqlite") as s:
        assert ids(s) == {"new"}
