"""The store: schema and migrations, outbox idempotence, append-only gate events, reorg rollback."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from edge.store import (
    LATEST_VERSION,
    MIGRATIONS,
    Booking,
    ChainBlock,
    GateEventRow,
    Lot,
    RentalEvent,
    Space,
    Store,
    StoreError,
    StoreVersionError,
    new_event_id,
)
from edge.store.store import split_sql

LOT = "lot-1"
OWNER = "0x" + "11" * 20
RENTER = "0x" + "22" * 20
COMMIT_A = "0x" + "aa" * 32
COMMIT_B = "0x" + "bb" * 32
HOUR = 3_600_000
T0 = 1_790_000_000_000


def bhash(n: int, fork: str = "0") -> str:
    return "0x" + f"{fork}{n:063x}"


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        self.now += 1
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "s.sqlite", clock=FakeClock())
    yield s
    s.close()


def rental(rid: str = "r1", block: int = 10, status: str = "open", log_index: int = 0,
           fork: str = "0") -> RentalEvent:
    return RentalEvent(rental_event_id=rid, space_id="s1", lot_id=LOT, owner=OWNER, window_start_ms=T0,
                       window_end_ms=T0 + 2 * HOUR, price_wei=10**18, status=status, block_number=block,
                       block_hash=bhash(block, fork), log_index=log_index)


def booking(bid: str = "b1", block: int = 11, status: str = "requested", commitment: str = COMMIT_A,
            start: int = T0, fork: str = "0") -> Booking:
    return Booking(booking_id=bid, rental_event_id="r1", space_id="s1", lot_id=LOT, renter=RENTER,
                   vehicle_commitment=commitment, window_start_ms=start, window_end_ms=start + HOUR,
                   status=status, block_number=block, block_hash=bhash(block, fork), log_index=0)


def gate_event(**over: object) -> GateEventRow:
    base = dict(event_id=new_event_id(T0), lane="north", direction="entry", kind="check_in",
                reason="booking b1 valid", occurred_at_ms=T0, booking_id="b1", plate_commitment=COMMIT_A,
                plate_masked="AB***3", confidence=0.93)
    return GateEventRow(**(base | over))  # type: ignore[arg-type]


# -- schema and migrations -------------------------------------------------------------------------

def test_fresh_store_is_at_latest_version_with_safe_pragmas(store: Store) -> None:
    assert store.schema_version() == LATEST_VERSION
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert store.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    assert store.integrity_check() == []


def test_appended_migration_is_applied_once_on_reopen(tmp_path: Path) -> None:
    db = tmp_path / "m.sqlite"
    Store(db).close()
    step = "CREATE TABLE plugin_notes (id INTEGER PRIMARY KEY, note TEXT);"
    extra = (*MIGRATIONS, (LATEST_VERSION + 1, step))
    with Store(db, migrations=extra) as s:
        assert s.schema_version() == LATEST_VERSION + 1
        s.conn.execute("INSERT INTO plugin_notes (note) VALUES ('kept')")
    with Store(db, migrations=extra) as s:  # reopening does not re-run the step
        assert s.conn.execute("SELECT note FROM plugin_notes").fetchall() == [("kept",)]


def test_failed_migration_leaves_previous_version(tmp_path: Path) -> None:
    db = tmp_path / "m.sqlite"
    Store(db).close()
    broken = (*MIGRATIONS, (LATEST_VERSION + 1, "CREATE TABLE half (id INTEGER); CREATE TABLE broken ("))
    with pytest.raises(StoreError, match=f"migration to version {LATEST_VERSION + 1} failed"):
        Store(db, migrations=broken)
    with Store(db) as s:
        assert s.schema_version() == LATEST_VERSION
        assert "half" not in s.db.table_names()


def test_concurrent_first_opens_migrate_once(tmp_path: Path) -> None:
    db = tmp_path / "race.sqlite"
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            with Store(db) as s:
                assert s.schema_version() == LATEST_VERSION
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_split_sql_keeps_trigger_bodies_whole() -> None:
    script = ("-- a comment; with a semicolon\nCREATE TABLE t (x);\nCREATE TRIGGER g BEFORE DELETE ON t\n"
              "BEGIN SELECT RAISE(ABORT, 'no; never'); END;\n-- trailing comment\n")
    statements = split_sql(script)
    assert len(statements) == 2 and statements[1].endswith("END;")
    with pytest.raises(ValueError, match="incomplete SQL statement"):
        split_sql("CREATE TABLE t (x); CREATE TABLE broken (")


def test_newer_database_is_refused_with_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "future.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 5}")
    with pytest.raises(StoreVersionError, match=rf"schema version {LATEST_VERSION + 5} .* supports up to "
                                                 rf"{LATEST_VERSION}; upgrade parkgate"):
        Store(db)


def test_unopenable_path_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no-such-dir"):
        Store(tmp_path / "no-such-dir" / "s.sqlite")


def test_store_is_confined_to_its_thread(store: Store) -> None:
    errors: list[BaseException] = []

    def use() -> None:
        try:
            store.counts()
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    t = threading.Thread(target=use)
    t.start()
    t.join()
    assert errors and isinstance(errors[0], sqlite3.ProgrammingError)


def test_second_store_in_another_thread_sees_committed_writes(store: Store) -> None:
    store.record_gate_event(gate_event(event_id="evt-threaded"), ("mqtt",))
    seen: list[bool] = []

    def read() -> None:
        with Store(store.path) as own:
            seen.append(own.gate_event("evt-threaded") is not None)

    t = threading.Thread(target=read)
    t.start()
    t.join()
    assert seen == [True]


# -- gate events and outbox ------------------------------------------------------------------------

def test_record_gate_event_round_trips_and_enqueues_each_destination(store: Store) -> None:
    ev = gate_event(evidence_path="/var/lib/parkgate/evidence/x.jpg", evidence_sha256="ab" * 32)
    assert store.record_gate_event(ev, ("chain", "mqtt")) is True
    back = store.gate_event(ev.event_id)
    assert back is not None and back.recorded_at_ms is not None
    assert replace(back, recorded_at_ms=None) == ev
    for dest in ("chain", "mqtt"):
        [row] = store.pending_outbox(dest)
        assert (row.event_id, row.status, row.attempts) == (ev.event_id, "pending", 0)
        assert row.payload["plate_commitment"] == COMMIT_A
    assert store.counts()["outbox.chain.pending"] == 1


def test_recording_same_event_twice_is_a_no_op(store: Store) -> None:
    ev = gate_event()
    assert store.record_gate_event(ev, ("chain",)) is True
    assert store.record_gate_event(ev, ("chain", "mqtt")) is False
    assert store.counts()["gate_events"] == 1
    assert store.counts()["outbox"] == 1


def test_enqueue_twice_is_a_no_op(store: Store) -> None:
    assert store.enqueue_outbox("chain", "assoc-2:b1", {"booking": "b1"}) is True
    assert store.enqueue_outbox("chain", "assoc-2:b1", {"booking": "other"}) is False
    [row] = store.pending_outbox("chain")
    assert row.payload == {"booking": "b1"}


def test_outbox_lifecycle_done_only_with_confirmation_and_never_undone(store: Store) -> None:
    ev = gate_event()
    store.record_gate_event(ev, ("chain",))
    [row] = store.pending_outbox("chain")
    store.mark_outbox_in_flight([row.id], sent_ref="0xtx1")
    [again] = store.pending_outbox("chain")  # in_flight is still owed: a crash here must not lose it
    assert (again.status, again.attempts, again.sent_ref) == ("in_flight", 1, "0xtx1")
    store.mark_outbox_failed([row.id], "rpc timeout")
    store.mark_outbox_in_flight([row.id])
    [again] = store.pending_outbox("chain")
    assert (again.status, again.attempts, again.sent_ref) == ("in_flight", 2, "0xtx1")
    assert again.last_error == "rpc timeout"
    with pytest.raises(StoreError, match="confirmation"):
        store.mark_outbox_done([row.id], "")
    store.mark_outbox_done([row.id], "0xreceipt")
    assert store.pending_outbox("chain") == []
    store.mark_outbox_failed([row.id], "late duplicate answer")  # a done row stays done
    store.mark_outbox_in_flight([row.id])
    done = store.outbox_row("chain", ev.event_id)
    assert done is not None and (done.status, done.ack_ref, done.attempts) == ("done", "0xreceipt", 2)


def test_outbox_done_requires_ack_even_in_raw_sql(store: Store) -> None:
    store.enqueue_outbox("mqtt", "e-raw-0001", {})
    with pytest.raises(sqlite3.IntegrityError):
        store.conn.execute("UPDATE outbox SET status = 'done'")


def test_dead_rows_leave_the_queue_but_are_counted(store: Store) -> None:
    store.enqueue_outbox("mqtt", "e-dead-0001", {"x": 1})
    [row] = store.pending_outbox("mqtt")
    store.mark_outbox_dead([row.id], "payload rejected by broker ACL")
    assert store.pending_outbox("mqtt") == []
    assert store.counts()["outbox.mqtt.dead"] == 1


def test_pending_outbox_is_oldest_first_and_limited(store: Store) -> None:
    ids = [f"evt-order-{i:04d}" for i in range(5)]
    for eid in ids:
        store.record_gate_event(gate_event(event_id=eid), ("mqtt",))
    assert [r.event_id for r in store.pending_outbox("mqtt", limit=3)] == ids[:3]


def test_gate_events_are_append_only(store: Store) -> None:
    store.record_gate_event(gate_event(event_id="evt-immutable"))
    with pytest.raises(sqlite3.IntegrityError, match="append-only: UPDATE"):
        store.conn.execute("UPDATE gate_events SET kind = 'denied'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only: DELETE"):
        store.conn.execute("DELETE FROM gate_events")
    assert store.gate_event("evt-immutable") is not None


def test_schema_rejects_plaintext_where_a_commitment_belongs(store: Store) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        store.conn.execute(
            "INSERT INTO gate_events (event_id, lane, direction, kind, reason, plate_commitment, "
            "occurred_at_ms, recorded_at_ms) "
            "VALUES ('evt-plain-1', 'n', 'entry', 'denied', 'r', 'AB123CD', 1, 1)")


@pytest.mark.parametrize(("field", "value", "allowed"), [
    ("plate_commitment", "AB123CD", "64 lowercase hex"),
    ("direction", "sideways", "entry | exit"),
    ("kind", "opened", "verified | check_in"),
    ("confidence", 1.5, r"\[0, 1\]"),
    ("event_id", "x", "8..64"),
])
def test_bad_gate_event_names_field_value_and_allowed(field: str, value: object, allowed: str) -> None:
    expected = rf"GateEventRow\.{field}: bad value {value!r}.*allowed: .*{allowed}"
    with pytest.raises(ValueError, match=expected):
        gate_event(**{field: value})


def test_new_event_ids_are_unique_and_time_ordered() -> None:
    ids = [new_event_id(T0 + i) for i in range(200)]
    assert len(set(ids)) == 200 and ids == sorted(ids) and all(len(i) == 26 for i in ids)


# -- lots, spaces, rentals, bookings ---------------------------------------------------------------

def test_lots_and_spaces(store: Store) -> None:
    store.upsert_lot(Lot(LOT, name="Harbour", geohash="u4pruyd", capacity=40))
    store.upsert_space(Space("s2", LOT, level="-1", bay="B2"))
    store.upsert_space(Space("s1", LOT, level="-1", bay="B1"))
    store.upsert_space(Space("s1", LOT, level="-2", bay="B1"))
    assert store.lot(LOT) == Lot(LOT, "Harbour", "u4pruyd", 40)
    assert [(s.space_id, s.level) for s in store.spaces(LOT)] == [("s1", "-2"), ("s2", "-1")]
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        store.upsert_space(Space("s9", "no-such-lot"))


def test_booking_lookups(store: Store) -> None:
    store.upsert_rental_event(rental())
    store.upsert_booking(booking("b1", commitment=COMMIT_A, start=T0))
    store.upsert_booking(booking("b2", commitment=COMMIT_A, start=T0 + HOUR, status="cancelled"))
    store.upsert_booking(booking("b3", commitment=COMMIT_B, start=T0))
    assert [b.booking_id for b in store.bookings_for_commitment(LOT, COMMIT_A)] == ["b1", "b2"]
    assert store.bookings_for_commitment("other-lot", COMMIT_A) == []
    found = store.bookings_for_commitments(LOT, [COMMIT_B, COMMIT_A, "0x" + "cc" * 32])
    assert [b.booking_id for b in found] == ["b1", "b3", "b2"]
    assert store.bookings_for_commitments(LOT, []) == []
    assert [b.booking_id for b in store.active_bookings(LOT, T0 + 10)] == ["b1", "b3"]
    assert store.active_bookings(LOT, T0 + HOUR) == []  # end is exclusive; b2 is cancelled
    assert [b.booking_id for b in store.active_bookings(LOT, T0 + HOUR, grace_after_ms=1)] == ["b1", "b3"]
    assert [b.booking_id for b in store.active_bookings(LOT, T0 - 5, grace_before_ms=5)] == ["b1", "b3"]
    assert store.rental_event("r1") == rental()


def test_booking_without_its_rental_event_is_a_clear_error(store: Store) -> None:
    with pytest.raises(StoreError, match="rental event r1 is not in the store"):
        store.upsert_booking(booking())
    assert store.counts()["bookings"] == 0


def test_older_logs_do_not_overwrite_newer_state(store: Store) -> None:
    store.upsert_rental_event(rental())
    store.upsert_booking(booking(block=12, status="verified"))
    store.upsert_booking(booking(block=11, status="requested"))  # replayed older log
    assert store.booking("b1").status == "verified"  # type: ignore[union-attr]
    store.upsert_booking(booking(block=12, status="verified"))  # exact replay is idempotent
    assert store.counts()["bookings"] == 1


def test_rental_event_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match=r"RentalEvent\.owner: bad value 'bob'.*Ethereum address"):
        replace(rental(), owner="bob")
    with pytest.raises(ValueError, match=r"RentalEvent\.window_end_ms.*window_end_ms > window_start_ms"):
        replace(rental(), window_end_ms=T0)
    with pytest.raises(ValueError, match=r"RentalEvent\.price_wei: bad value -1"):
        replace(rental(), price_wei=-1)


def test_large_prices_round_trip(store: Store) -> None:
    big = replace(rental(), price_wei=2**255 + 7)
    store.upsert_rental_event(big)
    assert store.rental_event("r1") == big


# -- reorgs ----------------------------------------------------------------------------------------

def test_rollback_restores_state_as_of_the_common_ancestor(store: Store) -> None:
    for n in range(10, 16):
        store.record_block(ChainBlock(n, bhash(n), bhash(n - 1)))
    store.upsert_rental_event(rental(block=10))
    store.upsert_booking(booking("b1", block=11))
    store.upsert_booking(booking("b1", block=13, status="verified"))
    store.upsert_rental_event(rental(block=13, status="booked", log_index=1))
    store.upsert_booking(booking("b2", block=14, commitment=COMMIT_B))
    store.set_checkpoint("rentals", 15, bhash(15))
    store.set_checkpoint("other", 9, bhash(9))

    assert store.rollback_to_block(12) == 3

    assert store.booking("b1").status == "requested"  # type: ignore[union-attr]
    assert store.booking("b1").block_number == 11  # type: ignore[union-attr]
    assert store.booking("b2") is None
    assert store.rental_event("r1") == rental(block=10)
    assert store.latest_block() == ChainBlock(12, bhash(12), bhash(11))
    cp = store.get_checkpoint("rentals")
    assert cp is not None and (cp.block_number, cp.block_hash) == (12, bhash(12))
    assert store.get_checkpoint("other").block_number == 9  # type: ignore[union-attr]
    assert store.integrity_check() == []

    # The new fork's logs apply cleanly on top.
    store.upsert_booking(booking("b1", block=13, status="cancelled", fork="f"))
    assert store.booking("b1").block_hash == bhash(13, "f")  # type: ignore[union-attr]


def test_rollback_below_everything_empties_chain_tables_but_keeps_gate_events(store: Store) -> None:
    store.upsert_rental_event(rental(block=10))
    store.upsert_booking(booking(block=11))
    store.record_gate_event(gate_event(event_id="evt-keep-0001"), ("chain",))
    store.rollback_to_block(5)
    counts = store.counts()
    kept = (counts["rental_events"], counts["bookings"], counts["gate_events"], counts["outbox"])
    assert kept == (0, 0, 1, 1)


def test_prune_keeps_the_latest_version_below_finality(store: Store) -> None:
    store.upsert_rental_event(rental(block=10))
    store.upsert_booking(booking("b1", block=11))
    store.upsert_booking(booking("b1", block=12, status="verified"))
    store.upsert_booking(booking("b1", block=20, status="checked_in"))
    assert store.prune_chain_history(15) == 1  # only b1@11 is superseded at or below 15
    store.rollback_to_block(15)
    assert store.booking("b1").status == "verified"  # type: ignore[union-attr]
