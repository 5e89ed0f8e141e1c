"""The durable store: one SQLite file in WAL mode, opened through sqlite-utils.

Durability: every write method runs in one ``BEGIN IMMEDIATE`` transaction and returns only after
``COMMIT`` with ``synchronous=FULL``, so whatever a method has returned survives a crash or power
loss. Acknowledge anything to anyone (gate log line, MQTT, chain) only after the method returned.

Threads: a ``Store`` (its sqlite3 connection) is confined to the thread that opened it; using it from
another thread raises ``sqlite3.ProgrammingError``. Give each thread its own ``Store`` on the same
path (WAL lets readers run beside the one writer; ``busy_timeout`` makes writers queue instead of
failing), or wrap a shared one in your own lock. Opening is cheap after the first migration.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import sqlite_utils

from edge import clock as clocks
from edge.errors import ParkgateError
from edge.store import integrity
from edge.store.integrity import StoreDamagedError
from edge.store.rows import (
    Booking,
    ChainBlock,
    Checkpoint,
    GateEventRow,
    ListEntry,
    Lot,
    ManualActionRow,
    OutboxAction,
    OutboxRow,
    RentalEvent,
    Space,
    as_dict,
)
from edge.store.schema import (
    CHAIN_DESTINATION,
    DROPPED_PREFIX,
    LATEST_VERSION,
    MIGRATIONS,
    OUTBOX_GIVEN_UP,
)

Clock = Callable[[], int]
ACTIVE_BOOKING_STATUSES = ("requested", "verified", "checked_in")
_CHAIN_TABLES = {"rental_event": ("rental_events", "rental_event_id", RentalEvent),
                 "booking": ("bookings", "booking_id", Booking)}
RETENTION_BATCH = 500  # rows per pruning transaction: the write lock is held for a few ms at a time
PRUNED_TABLES = ("gate_events", "outbox", "chain_seqs", "chain_txs", "manual_actions", "bookings",
                 "rental_events")


def _active(column: str) -> str:
    return f"{column} IN ({', '.join(repr(s) for s in ACTIVE_BOOKING_STATUSES)})"


_DROPPED_ROW = f"substr(o.ack_ref, 1, {len(DROPPED_PREFIX)}) = '{DROPPED_PREFIX}'"  # SQL: outbox row o


def _kept(t: str) -> str:
    """SQL: gate event ``t`` stays whatever its age: newer than the cutoff, an outbox row of it not
    delivered (pending, in flight, rejected, dead) or dropped by an operator after the cutoff (the drop
    is audited in the row: kept retention_days after it), or its booking not settled (the exit of a
    booking not checked in looks for its last row)."""
    return (f"({t}.occurred_at_ms >= :cutoff OR EXISTS (SELECT 1 FROM outbox o WHERE o.event_id = "
            f"{t}.event_id AND (o.status <> 'done' OR ({_DROPPED_ROW} AND o.updated_at_ms >= :cutoff))) "
            f"OR EXISTS (SELECT 1 FROM bookings b WHERE b.booking_id = {t}.booking_id AND "
            f"{_active('b.status')}))")



def _passage_of(t: str, vehicle: str) -> str:
    """SQL: ``t`` is a passage (what rebuilds who is inside: edge.daemon.records) of ``vehicle``'s vehicle."""
    return (f"{t}.kind IN ('check_in', 'check_out') AND {t}.plate_commitment IS NOT NULL "
            f"AND {t}.plate_commitment = {vehicle}.plate_commitment")


# Who is inside is rebuilt from each vehicle's last passage; so a vehicle's last passage stays while it is an
# entry (the vehicle is inside) or while an older passage of the vehicle stays (it would become the last).
_LAST_PASSAGE = (f"{_passage_of('g', 'g')} AND NOT EXISTS (SELECT 1 FROM gate_events n "
                 f"WHERE {_passage_of('n', 'g')} AND n.seq > g.seq)")
_EXPIRED = (f"NOT {_kept('g')} AND NOT ({_LAST_PASSAGE} AND (g.direction = 'entry' OR EXISTS (SELECT 1 FROM "
            f"gate_events p WHERE {_passage_of('p', 'g')} AND p.seq < g.seq AND {_kept('p')})))")
_EXPIRED_EVENTS = (f"SELECT g.seq FROM gate_events g WHERE g.seq > :after AND g.occurred_at_ms < :cutoff "
                   f"AND {_EXPIRED} ORDER BY g.seq LIMIT :batch")
_EXPIRED_IN_BATCH = (f"SELECT g.event_id FROM gate_events g WHERE g.seq IN (SELECT value FROM "
                     f"json_each(:seqs)) AND g.occurred_at_ms < :cutoff AND {_EXPIRED}")
def _ended(t: str) -> str:
    """SQL: chain-sourced row ``t``'s window ended and it last changed before the cutoff (a block that old
    is past any reorg). A log about it that comes later is dropped by the sync as unknown (_unknown)."""
    return f"{t}.window_end_ms < :cutoff AND {t}.updated_at_ms < :cutoff"


# Rows of other tables that go by age, as a condition on the row ``t``; deleted in this order: a booking once
# settled, then a rental event once none of its bookings stays.
_EXPIRED_ROWS = {
    "manual_actions": "t.at_ms < :cutoff",
    "bookings": f"{_ended('t')} AND NOT {_active('t.status')}",
    "rental_events": (f"{_ended('t')} AND NOT EXISTS (SELECT 1 FROM bookings b WHERE b.rental_event_id = "
                      f"t.rental_event_id AND NOT ({_ended('b')} AND NOT {_active('b.status')}))"),
    # settled transactions of ours whose rows were all delivered (a row not done may need its receipt)
    "chain_txs": ("t.status <> 'pending' AND t.sent_at_ms < :cutoff AND NOT EXISTS (SELECT 1 FROM "
                  "json_each(t.outbox_ids) j JOIN outbox o ON o.id = j.value WHERE o.status <> 'done')"),
}


class StoreError(ParkgateError):
    """The store cannot be used as asked; the message says why and what to do."""


class StoreVersionError(StoreError):
    """The database was written by a newer parkgate (schema version above ours)."""


def wall_clock_ms() -> int:
    """The wall clock in unix ms (``edge.clock.wall_clock_ms``: it honours the tests' offset hook)."""
    return clocks.wall_clock_ms()


@dataclass(frozen=True)
class PrunedRows:
    """What one run of the store retention deleted (or, ``dry_run``, would delete), per table; ``kept``:
    gate events older than the cutoff that stay (undelivered, a vehicle inside, a booking not settled)."""

    cutoff_ms: int
    dry_run: bool = False
    gate_events: int = 0
    outbox: int = 0
    chain_seqs: int = 0
    chain_txs: int = 0
    manual_actions: int = 0
    bookings: int = 0
    rental_events: int = 0
    kept: int = 0

    def summary(self) -> str:
        """``"12 gate_events, 24 outbox, ..."``: the counts in words, for the log and the CLI."""
        return ", ".join(f"{getattr(self, f.name)} {f.name}" for f in fields(self) if f.name in PRUNED_TABLES)


class Store:
    """The gateway's local state. See the module docstring for threading and durability rules."""

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 5000, clock: Clock = wall_clock_ms,
                 migrations: Sequence[tuple[int, str]] = MIGRATIONS) -> None:
        self.path = Path(path)
        self.clock = clock
        refusal = integrity.preflight(self.path)  # never a new empty store in place of a lost one
        if refusal is not None:
            raise StoreDamagedError(f"{refusal}. {integrity.recovery_steps(self.path)}")
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=busy_timeout_ms / 1000)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {self.path}: {exc}; check the [store] path and that "
                             "its directory exists and is writable") from exc
        self.db = sqlite_utils.Database(conn)
        self.conn = conn
        try:
            self._configure(busy_timeout_ms)
            self._migrate(migrations)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise self._open_error(exc) from exc
        except Exception:
            conn.close()
            raise
        integrity.mark_initialised(self.path)

    def _open_error(self, exc: sqlite3.DatabaseError) -> ParkgateError:
        """What an SQLite error while opening means, in words, with what to do."""
        name = getattr(exc, "sqlite_errorname", "")
        if name in ("SQLITE_CORRUPT", "SQLITE_NOTADB") or not isinstance(exc, sqlite3.OperationalError):
            problem = integrity.header_problem(self.path) or f"store {self.path} is damaged ({exc})"
            return StoreDamagedError(f"{problem}. {integrity.recovery_steps(self.path)}")
        folder = self.path.parent
        if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN")) or not os.access(folder, os.W_OK):
            why = ("is on a read-only file system" if _read_only_fs(folder)
                   else "must be writable by parkgate (wrong owner or mode?)")
            return StoreError(f"store {self.path} cannot be written ({exc}): the directory {folder} {why}")
        if name.startswith(("SQLITE_FULL", "SQLITE_IOERR")):
            return StoreError(f"store {self.path} cannot be written ({exc}): is the disk of {folder} full "
                              "or failing? Free space (old evidence, logs) and restart")
        return StoreError(f"cannot open store {self.path}: {exc}")

    def check_writable(self) -> None:
        """Raise StoreError (naming the file, its owner and the fix) unless this process can write the
        store. SQLite opens a file it may not write read-only without a word, and only the first write
        fails; so write a row here, in a transaction that is rolled back (SQLite checks at the write)."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute("UPDATE clock_floor SET floor_ms = floor_ms WHERE id = 1")
        except sqlite3.DatabaseError as exc:
            if getattr(exc, "sqlite_errorname", "").startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
                raise StoreError(f"store {self.path} is locked by another process ({exc}): is another "
                                 "parkgate (run, chain sync, a store command) still running?") from exc
            raise StoreError(_unwritable(self.path, exc)) from exc
        finally:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")

    def quick_check(self) -> list[str]:
        """``PRAGMA quick_check`` problems (empty: the pages and indexes are sound); run at daemon start."""
        return integrity.quick_check(self.conn)

    # -- lifecycle ---------------------------------------------------------------------------------

    def _configure(self, busy_timeout_ms: int) -> None:
        mode = self._enable_wal(busy_timeout_ms)
        if str(mode).lower() != "wal":
            raise StoreError(f"store {self.path}: could not enable WAL (journal_mode={mode}); "
                             "use a local filesystem that supports shared memory")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")

    def _enable_wal(self, busy_timeout_ms: int) -> str:
        """Switch a new file to WAL. The switch needs a moment of exclusive access and SQLite answers
        "locked" at once (no busy handler) while another opener holds the file, e.g. the daemon and
        `parkgate chain sync` starting together: retry until the busy timeout, as any write would wait."""
        deadline = time.monotonic() + busy_timeout_ms / 1000
        while True:
            try:
                return str(self.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0])
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)

    def _migrate(self, migrations: Sequence[tuple[int, str]]) -> None:
        latest = migrations[-1][0] if migrations else 0
        self._refuse_newer(latest)
        for version, sql in migrations:
            if version <= self.schema_version():
                continue
            try:
                statements = split_sql(sql)
                with self.transaction() as conn:
                    # Re-read under the write lock: another process may have migrated meanwhile.
                    if self._refuse_newer(latest) >= version:
                        continue
                    for statement in statements:
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {int(version)}")
            except (sqlite3.Error, ValueError) as exc:
                raise StoreError(f"store {self.path}: migration to version {version} failed: {exc}") from exc

    def _refuse_newer(self, latest: int) -> int:
        current = self.schema_version()
        if current > latest:
            raise StoreVersionError(
                f"store {self.path} has schema version {current} but this parkgate supports up to "
                f"{latest}; upgrade parkgate, or restore a backup made by this version")
        return current

    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed (durably) on normal exit, rolled back on error.

        Nests: inside an open transaction it is a savepoint, so a caller can group several store
        methods (e.g. a gate event and its session state) into one atomic commit.
        """
        if self.conn.in_transaction:
            self.conn.execute("SAVEPOINT nested")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK TO nested")
                self.conn.execute("RELEASE nested")
                raise
            self.conn.execute("RELEASE nested")
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def integrity_check(self) -> list[str]:
        """Problems found by SQLite (empty list = ok), including foreign-key violations."""
        rows = [r[0] for r in self.conn.execute("PRAGMA integrity_check")]
        problems = [] if rows == ["ok"] else rows
        fk_rows = self.conn.execute("PRAGMA foreign_key_check")
        problems += [f"foreign key violation: {tuple(r)}" for r in fk_rows]
        return problems

    # -- lots and spaces ---------------------------------------------------------------------------

    def upsert_lot(self, lot: Lot) -> None:
        with self.transaction() as c:
            c.execute("INSERT INTO lots (lot_id, name, geohash, capacity, updated_at_ms) VALUES (?,?,?,?,?) "
                      "ON CONFLICT(lot_id) DO UPDATE SET name=excluded.name, geohash=excluded.geohash, "
                      "capacity=excluded.capacity, updated_at_ms=excluded.updated_at_ms",
                      (lot.lot_id, lot.name, lot.geohash, lot.capacity, self.clock()))

    def upsert_space(self, space: Space) -> None:
        with self.transaction() as c:
            c.execute("INSERT INTO spaces (space_id, lot_id, level, bay, geohash, updated_at_ms) VALUES "
                      "(?,?,?,?,?,?) ON CONFLICT(space_id) DO UPDATE SET lot_id=excluded.lot_id, "
                      "level=excluded.level, bay=excluded.bay, geohash=excluded.geohash, "
                      "updated_at_ms=excluded.updated_at_ms",
                      (space.space_id, space.lot_id, space.level, space.bay, space.geohash, self.clock()))

    def lot(self, lot_id: str) -> Lot | None:
        rows = list(self.db["lots"].rows_where("lot_id = ?", [lot_id]))
        return Lot(**{k: v for k, v in rows[0].items() if k != "updated_at_ms"}) if rows else None

    def spaces(self, lot_id: str) -> list[Space]:
        return [Space(**{k: v for k, v in r.items() if k != "updated_at_ms"})
                for r in self.db["spaces"].rows_where("lot_id = ?", [lot_id], order_by="space_id")]

    # -- chain-sourced rows (rental events, bookings) with reorg history ---------------------------

    def upsert_rental_event(self, event: RentalEvent) -> None:
        """Apply a rental event as seen in a log; older logs than the stored version are ignored."""
        with self.transaction():
            self._apply_chain_row("rental_event", as_dict(event) | {"price_wei": str(event.price_wei)})

    def upsert_booking(self, booking: Booking) -> None:
        """Apply a booking as seen in a log; its rental event must already be stored."""
        with self.transaction():
            try:
                self._apply_chain_row("booking", as_dict(booking))
            except sqlite3.IntegrityError as exc:
                if "FOREIGN KEY" in str(exc):
                    raise StoreError(f"booking {booking.booking_id}: rental event {booking.rental_event_id} "
                                     "is not in the store; sync its rental event first") from exc
                raise

    def _apply_chain_row(self, entity: str, row: dict[str, Any], force: bool = False) -> None:
        table, key, _ = _CHAIN_TABLES[entity]
        self.conn.execute(
            "INSERT OR IGNORE INTO chain_history (entity, entity_id, block_number, log_index, row_json) "
            "VALUES (?,?,?,?,?)",
            (entity, row[key], row["block_number"], row["log_index"], json.dumps(row, sort_keys=True)))
        cols = list(row) + ["updated_at_ms"]
        updates = ", ".join(f"{c}=excluded.{c}" for c in cols if c != key)
        newer = ("" if force else
                 f" WHERE excluded.block_number > {table}.block_number OR (excluded.block_number = "
                 f"{table}.block_number AND excluded.log_index >= {table}.log_index)")
        self.conn.execute(
            f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
            f"ON CONFLICT({key}) DO UPDATE SET {updates}{newer}",
            [*row.values(), self.clock()])

    def rental_event(self, rental_event_id: str) -> RentalEvent | None:
        rows = list(self.db["rental_events"].rows_where("rental_event_id = ?", [rental_event_id]))
        return _rental_event(rows[0]) if rows else None

    def booking(self, booking_id: str) -> Booking | None:
        rows = list(self.db["bookings"].rows_where("booking_id = ?", [booking_id]))
        return _booking(rows[0]) if rows else None

    def bookings_for_commitment(self, lot_id: str, commitment: str) -> list[Booking]:
        """Every booking (any status) of this vehicle commitment at this lot, oldest window first."""
        return [_booking(r) for r in self.db["bookings"].rows_where(
            "lot_id = ? AND vehicle_commitment = ?", [lot_id, commitment],
            order_by="window_start_ms, booking_id")]

    def bookings_for_commitments(self, lot_id: str, commitments: Iterable[str]) -> list[Booking]:
        """Every booking at this lot whose commitment is one of ``commitments`` (the fuzzy-match
        candidates of one plate read), in one query; oldest window first."""
        wanted = sorted(set(commitments))
        if not wanted:
            return []
        marks = ", ".join("?" * len(wanted))
        return [_booking(r) for r in self.db["bookings"].rows_where(
            f"lot_id = ? AND vehicle_commitment IN ({marks})", [lot_id, *wanted],
            order_by="window_start_ms, booking_id")]

    def active_bookings(self, lot_id: str, at_ms: int, grace_before_ms: int = 0,
                        grace_after_ms: int = 0) -> list[Booking]:
        """Bookings whose window (widened by the graces) contains ``at_ms`` and that are still usable."""
        marks = ", ".join("?" * len(ACTIVE_BOOKING_STATUSES))
        return [_booking(r) for r in self.db["bookings"].rows_where(
            f"lot_id = ? AND status IN ({marks}) AND window_start_ms - ? <= ? AND ? < window_end_ms + ?",
            [lot_id, *ACTIVE_BOOKING_STATUSES, grace_before_ms, at_ms, at_ms, grace_after_ms],
            order_by="window_start_ms, booking_id")]

    # -- chain blocks, checkpoints, reorgs ---------------------------------------------------------

    def record_block(self, block: ChainBlock) -> None:
        """Remember a processed block's hash (replacing a stale one at the same height)."""
        with self.transaction() as c:
            c.execute("INSERT INTO chain_blocks (number, hash, parent_hash) VALUES (?,?,?) "
                      "ON CONFLICT(number) DO UPDATE SET hash = excluded.hash, "
                      "parent_hash = excluded.parent_hash",
                      (block.number, block.hash, block.parent_hash))

    def block(self, number: int) -> ChainBlock | None:
        row = self.conn.execute("SELECT number, hash, parent_hash FROM chain_blocks WHERE number = ?",
                                (number,)).fetchone()
        return ChainBlock(*row) if row else None

    def latest_block(self) -> ChainBlock | None:
        row = self.conn.execute("SELECT number, hash, parent_hash FROM chain_blocks "
                                "ORDER BY number DESC LIMIT 1").fetchone()
        return ChainBlock(*row) if row else None

    def get_checkpoint(self, name: str) -> Checkpoint | None:
        row = self.conn.execute("SELECT name, block_number, block_hash, updated_at_ms FROM sync_checkpoints "
                                "WHERE name = ?", (name,)).fetchone()
        return Checkpoint(*row) if row else None

    def set_checkpoint(self, name: str, block_number: int, block_hash: str) -> None:
        with self.transaction() as c:
            c.execute("INSERT INTO sync_checkpoints (name, block_number, block_hash, updated_at_ms) "
                      "VALUES (?,?,?,?) ON CONFLICT(name) DO UPDATE SET block_number=excluded.block_number, "
                      "block_hash=excluded.block_hash, updated_at_ms=excluded.updated_at_ms",
                      (name, block_number, block_hash, self.clock()))

    def rollback_to_block(self, number: int) -> int:
        """Undo every chain-sourced change from blocks > ``number`` (the common ancestor after a reorg).

        Rental events and bookings return to their last version at or below ``number`` (or vanish if
        they had none), block hashes above it are forgotten, and checkpoints above it move back to it.
        Gate events and the outbox are not touched. Returns how many rows were restored or removed.
        """
        with self.transaction() as c:
            touched = c.execute("SELECT DISTINCT entity, entity_id FROM chain_history WHERE block_number > ?",
                                (number,)).fetchall()
            c.execute("DELETE FROM chain_history WHERE block_number > ?", (number,))
            # Bookings before rental events: a booking references its rental event.
            for entity in ("booking", "rental_event"):
                for _, entity_id in (t for t in touched if t[0] == entity):
                    self._restore_chain_row(entity, entity_id)
            c.execute("DELETE FROM chain_blocks WHERE number > ?", (number,))
            c.execute("UPDATE sync_checkpoints SET block_number = ?, block_hash = COALESCE((SELECT hash FROM "
                      "chain_blocks WHERE number = ?), ''), updated_at_ms = ? WHERE block_number > ?",
                      (number, number, self.clock(), number))
        return len(touched)

    def _restore_chain_row(self, entity: str, entity_id: str) -> None:
        table, key, _ = _CHAIN_TABLES[entity]
        last = self.conn.execute(
            "SELECT row_json FROM chain_history WHERE entity = ? AND entity_id = ? "
            "ORDER BY block_number DESC, log_index DESC LIMIT 1", (entity, entity_id)).fetchone()
        if last is None:
            self.conn.execute(f"DELETE FROM {table} WHERE {key} = ?", (entity_id,))
        else:
            self._apply_chain_row(entity, json.loads(last[0]), force=True)

    def prune_chain_history(self, finalized_block: int) -> int:
        """Forget reorg history that can no longer be needed: versions superseded at or below
        ``finalized_block`` and block hashes below it. Returns the number of history rows removed."""
        with self.transaction() as c:
            removed = c.execute(
                "DELETE FROM chain_history AS h WHERE h.block_number <= ?1 AND EXISTS (SELECT 1 FROM "
                "chain_history AS n WHERE n.entity = h.entity AND n.entity_id = h.entity_id AND "
                "n.block_number <= ?1 AND (n.block_number > h.block_number OR (n.block_number = "
                "h.block_number AND n.log_index > h.log_index)))", (finalized_block,)).rowcount
            c.execute("DELETE FROM chain_blocks WHERE number < ?", (finalized_block,))
        return removed

    # -- gate events and the outbox ----------------------------------------------------------------

    def record_gate_event(self, event: GateEventRow, destinations: Iterable[str] = ()) -> bool:
        """Durably record a gate event and enqueue it for each destination, in ONE transaction.

        Returns False (and changes nothing) if an event with this id was already recorded, so a
        retried call is harmless. The outbox payload is the event's fields as JSON.
        """
        recorded = replace(event, recorded_at_ms=self.clock())
        row = as_dict(recorded)
        with self.transaction() as c:
            if c.execute("SELECT 1 FROM gate_events WHERE event_id = ?", (event.event_id,)).fetchone():
                return False
            c.execute(f"INSERT INTO gate_events ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                      list(row.values()))
            for destination in destinations:
                self._enqueue(destination, event.event_id, row)
        return True

    def journal_pass(self, pass_no: int, event: GateEventRow) -> None:
        """Durably note a granted pass of ``event.lane`` before its gate opens (replacing an earlier
        note of the same pass): ``event`` is the row the pass becomes if it is never recorded."""
        row = as_dict(event)
        del row["recorded_at_ms"]
        cols = ["pass_no", *row]
        with self.transaction() as c:
            c.execute(f"INSERT OR REPLACE INTO pass_journal ({', '.join(cols)}) "
                      f"VALUES ({', '.join('?' * len(cols))})", [pass_no, *row.values()])

    def mark_journaled_pass_opened(self, lane: str, pass_no: int) -> None:
        """The controller acknowledged the open pulse of this journaled pass."""
        with self.transaction() as c:
            c.execute("UPDATE pass_journal SET opened = 1 WHERE lane = ? AND pass_no = ?", (lane, pass_no))

    def journaled_passes(self) -> list[tuple[int, bool, GateEventRow]]:
        """Journal rows not cleared yet as (pass_no, open acknowledged, event), oldest first."""
        return [(r.pop("pass_no"), bool(r.pop("opened")), GateEventRow(**r))
                for r in self.db["pass_journal"].rows_where(order_by="occurred_at_ms, lane, pass_no")]

    def clear_journaled_pass(self, lane: str, pass_no: int) -> None:
        """Forget the journal row of a recorded pass (call inside the transaction that records it)."""
        with self.transaction() as c:
            c.execute("DELETE FROM pass_journal WHERE lane = ? AND pass_no = ?", (lane, pass_no))

    def enqueue_outbox(self, destination: str, event_id: str, payload: dict[str, Any]) -> bool:
        """Queue a payload for a destination; a second enqueue of the same (destination, event_id)
        is a no-op and returns False."""
        with self.transaction():
            return self._enqueue(destination, event_id, payload)

    def _enqueue(self, destination: str, event_id: str, payload: dict[str, Any]) -> bool:
        if not destination:
            raise StoreError("outbox destination must be a non-empty name such as 'chain' or 'mqtt'")
        now = self.clock()
        cur = self.conn.execute(
            "INSERT INTO outbox (destination, event_id, payload, created_at_ms, updated_at_ms) "
            "VALUES (?,?,?,?,?) ON CONFLICT(destination, event_id) DO NOTHING",
            (destination, event_id, json.dumps(payload, sort_keys=True, separators=(",", ":")), now, now))
        return cur.rowcount == 1

    def record_manual_action(self, action: ManualActionRow) -> int:
        """Append one audited manual gate operation; returns its id."""
        row = as_dict(action)
        with self.transaction() as c:
            cur = c.execute(f"INSERT INTO manual_actions ({', '.join(row)}) "
                            f"VALUES ({', '.join('?' * len(row))})", list(row.values()))
        return int(cur.lastrowid or 0)

    def manual_actions(self, limit: int = 100) -> list[tuple[int, ManualActionRow]]:
        """The latest audited manual operations as (id, row), newest first."""
        return [(r.pop("id"), ManualActionRow(**r)) for r in self.db["manual_actions"].rows_where(
            order_by="id DESC", limit=limit)]

    def gate_event(self, event_id: str) -> GateEventRow | None:
        rows = list(self.db["gate_events"].rows_where("event_id = ?", [event_id]))
        return _gate_event(rows[0]) if rows else None

    def gate_events(self, after_seq: int = 0, limit: int = 1000) -> list[tuple[int, GateEventRow]]:
        """Gate events in recording order as (seq, event), for readers that page with ``after_seq``."""
        return [(r["seq"], _gate_event(r)) for r in self.db["gate_events"].rows_where(
            "seq > ?", [after_seq], order_by="seq", limit=limit)]

    def checked_out_here(self, booking_ids: Sequence[str]) -> set[str]:
        """Those of ``booking_ids`` whose check-out this gateway recorded (delivered to the chain or not)."""
        if not booking_ids:  # the usual case at a gate: a plate with no booking, no query
            return set()
        rows = self.conn.execute("SELECT DISTINCT booking_id FROM gate_events WHERE kind = 'check_out' AND "
                                 "booking_id IN (SELECT value FROM json_each(?))",
                                 (json.dumps(list(booking_ids)),))
        return {booking_id for (booking_id,) in rows}

    def last_gate_event_of_booking(self, booking_id: str) -> GateEventRow | None:
        """The booking's last recorded gate event (recording order), or None."""
        rows = list(self.db["gate_events"].rows_where("booking_id = ?", [booking_id], order_by="seq DESC",
                                                      limit=1))
        return _gate_event(rows[0]) if rows else None

    def pending_outbox(self, destination: str, limit: int = 100) -> list[OutboxRow]:
        """Rows not yet confirmed, oldest first: 'pending' ones and 'in_flight' ones left by a crash
        or a lost answer. For an in_flight row, reconcile ``sent_ref`` with the destination (was that
        transaction mined? is the event already on chain?) before sending it again."""
        return [_outbox(r) for r in self.db["outbox"].rows_where(
            "destination = ? AND status IN ('pending', 'in_flight')", [destination],
            order_by="id", limit=limit)]

    def mark_outbox_in_flight(self, ids: Sequence[int], sent_ref: str | None = None) -> None:
        """Record an attempt (before sending): attempts += 1, and what was sent (e.g. the tx hash)."""
        self._update_outbox(
            ids, "status = 'in_flight', attempts = attempts + 1, sent_ref = COALESCE(?, sent_ref)",
            [sent_ref])

    def mark_outbox_done(self, ids: Sequence[int], ack_ref: str) -> None:
        """Mark rows delivered; call only after the destination confirmed (mined receipt, broker ack).
        ``ack_ref`` is that confirmation (tx hash, message id). Rows already done keep their first ref."""
        if not ack_ref:
            raise StoreError("mark_outbox_done needs the destination's confirmation (tx hash or ack id)")
        self._update_outbox(ids, "status = 'done', ack_ref = ?, last_error = NULL", [ack_ref])

    def mark_outbox_failed(self, ids: Sequence[int], error: str) -> None:
        """The attempt certainly did not deliver (rejected, not sent): back to 'pending' for a retry."""
        self._update_outbox(ids, "status = 'pending', last_error = ?", [error])

    def mark_outbox_rejected(self, ids: Sequence[int], error: str) -> None:
        """The destination took the row and refused it (a gate record the contract rejected): keep it
        with the reason, stop retrying, and show it until an operator has looked at it."""
        self._update_outbox(ids, "status = 'rejected', last_error = ?", [error])

    def outbox_rows(self, ids: Sequence[int]) -> list[OutboxRow]:
        """The outbox rows with these ids, in the order of ``ids`` (missing ids are left out)."""
        marks = ", ".join("?" * len(ids))
        found = {r["id"]: _outbox(r) for r in self.db["outbox"].rows_where(f"id IN ({marks})", list(ids))}
        return [found[i] for i in ids if i in found]

    def mark_outbox_dead(self, ids: Sequence[int], error: str) -> None:
        """The destination refuses this row for good (e.g. invalid payload): keep it, stop retrying."""
        self._update_outbox(ids, "status = 'dead', last_error = ?", [error])

    def given_up_outbox(self, destination: str | None = None, status: str | None = None) -> list[OutboxRow]:
        """The outbox rows the sync stopped retrying (``OUTBOX_GIVEN_UP``: rejected, dead), newest first;
        only ``destination``'s, only those in ``status``, when given. They keep their gate event from the
        retention until an operator drops them (``drop_outbox``)."""
        states = OUTBOX_GIVEN_UP if status is None else (status,)
        return self._outbox_listing(f"status IN ({', '.join('?' * len(states))})", list(states), destination)

    def acted_outbox(self, destination: str | None = None, status: str | None = None) -> list[OutboxRow]:
        """The outbox rows an operator dropped or retried (``operator_actions``), in any state unless
        ``status``, newest first; only ``destination``'s when given."""
        if status is None:
            return self._outbox_listing("json_array_length(operator_actions) > 0", [], destination)
        return self._outbox_listing("json_array_length(operator_actions) > 0 AND status = ?", [status],
                                    destination)

    def _outbox_listing(self, where: str, params: list[Any], destination: str | None) -> list[OutboxRow]:
        """The outbox rows matching ``where``, only ``destination``'s when given, newest first."""
        if destination is not None:
            where, params = f"{where} AND destination = ?", [*params, destination]
        return [_outbox(r) for r in self.db["outbox"].rows_where(where, params, order_by="id DESC")]

    def drop_outbox(self, ids: Sequence[int], ack_ref: str, *, dry_run: bool = False) -> list[OutboxRow]:
        """An operator gives up delivering these rejected or dead rows: each becomes 'done' with ``ack_ref``
        (who dropped it; ``updated_at_ms``: when) and ``last_error`` "was <state>: <its error>", so the store
        retention can prune them with their gate event; the drop is added to each row's
        ``operator_actions``. Returns the rows as they were (``dry_run``: nothing
        changes). A StoreError naming every id that is missing or not rejected/dead changes nothing."""
        if not ack_ref.startswith(DROPPED_PREFIX) or ack_ref == DROPPED_PREFIX:
            raise StoreError(f"drop_outbox: ack_ref {ack_ref!r} not allowed; allowed: who dropped the rows, "
                             f"'{DROPPED_PREFIX}NAME', e.g. '{DROPPED_PREFIX}alice'")
        listed = json.dumps(list(dict.fromkeys(ids)))
        if dry_run:  # reads only: no write lock on the daemon's store
            return self._given_up(self.conn, listed, "drop")
        with self.transaction() as c:
            rows = self._given_up(c, listed, "drop")
            now = self.clock()
            c.execute("UPDATE outbox SET status = 'done', ack_ref = ?, last_error = 'was ' || status "
                      f"|| ': ' || coalesce(last_error, '-'), {_ACTION_APPENDED}, updated_at_ms = ? "
                      "WHERE id IN (SELECT value FROM json_each(?))",
                      (ack_ref, now, "drop", ack_ref, now, listed))
        return rows

    def dropped_outbox(self, destination: str) -> int:
        """How many of ``destination``'s rows are 'done' as an operator dropped them (never delivered)."""
        row = self.conn.execute("SELECT count(*) FROM outbox o WHERE o.destination = ? AND o.status = 'done' "
                                f"AND {_DROPPED_ROW}", (destination,)).fetchone()
        return int(row[0])

    def renumber_outbox(self, ids: Sequence[int], error: str) -> None:
        """Send these 'chain' rows again under new record numbers (their old numbers are spent: the
        contract's high-water mark skips a number it has seen): their ``chain_seqs`` numbers go and they are
        back to 'pending' with ``error``, in one transaction (the caller's, when one is open)."""
        with self.transaction() as c:
            c.executemany("DELETE FROM chain_seqs WHERE outbox_id = ?", [(i,) for i in ids])
            self.mark_outbox_failed(list(ids), error)

    def retry_rejected_outbox(self, ids: Sequence[int], retried_by: str, *,
                              dry_run: bool = False) -> list[OutboxRow]:
        """An operator who fixed the cause of a rejection (e.g. authorised the gateway on the contract) sends
        these rejected 'chain' rows again, as the sync's own retry does (``renumber_outbox``): a new record
        number, back to 'pending', ``last_error`` "<retried_by>; was rejected: <its error>", the retry added
        to its ``operator_actions`` (which, unlike ``last_error``, delivery keeps). Returns the rows
        as they were (``dry_run``: nothing changes). A StoreError naming every id that is missing, not a
        chain row or not rejected (a dead row cannot be sent) changes nothing."""
        if not retried_by:
            raise StoreError("retry_rejected_outbox needs who retries the rows, e.g. 'retried by alice'")
        listed = json.dumps(list(dict.fromkeys(ids)))
        if dry_run:  # reads only: no write lock on the daemon's store
            return self._given_up(self.conn, listed, "retry")
        with self.transaction() as c:
            rows = self._given_up(c, listed, "retry")
            c.execute(f"UPDATE outbox SET {_ACTION_APPENDED} WHERE id IN (SELECT value FROM json_each(?))",
                      (self.clock(), "retry", retried_by, listed))
            for row in rows:
                self.renumber_outbox([row.id], f"{retried_by}; was rejected: {row.last_error or '-'}")
        return rows

    def _given_up(self, c: sqlite3.Connection, listed: str, verb: str) -> list[OutboxRow]:
        """The outbox rows with the ids in ``listed`` (JSON) when ``verb`` ("drop", "retry") may take each
        of them (``OUTBOX_ACTIONS``); else a StoreError naming each other id and why."""
        cur = c.execute("SELECT j.value AS wanted, o.* FROM json_each(?) j LEFT JOIN outbox o "
                        "ON o.id = j.value ORDER BY j.key", (listed,))
        names = [d[0] for d in cur.description]
        found = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        wrong = [f"{r['wanted']} ({why})" for r in found if (why := _refused(verb, r))]
        if wrong:
            destination, states, past = OUTBOX_ACTIONS[verb]
            rows = f"{destination} rows" if destination else "rows"
            raise StoreError(f"cannot {verb} outbox row(s) {', '.join(wrong)}: only {rows} in state "
                             f"{' or '.join(states)} can be {past}; nothing was {past}")
        return [_outbox({k: v for k, v in r.items() if k != "wanted"}) for r in found]

    def _update_outbox(self, ids: Sequence[int], assignments: str, params: list[Any]) -> None:
        if not ids:
            return
        marks = ", ".join("?" * len(ids))
        with self.transaction() as c:
            c.execute(f"UPDATE outbox SET {assignments}, updated_at_ms = ? WHERE id IN ({marks}) "
                      "AND status <> 'done'", [*params, self.clock(), *ids])

    def outbox_row(self, destination: str, event_id: str) -> OutboxRow | None:
        rows = list(self.db["outbox"].rows_where("destination = ? AND event_id = ?", [destination, event_id]))
        return _outbox(rows[0]) if rows else None

    # -- retention ([store] retention_days) ----------------------------------------------------------

    def prune(self, cutoff_ms: int, *, batch: int = RETENTION_BATCH, pause_s: float = 0.0,
              dry_run: bool = False, stopped: Callable[[], bool] = lambda: False) -> PrunedRows:
        """Delete what is older than ``cutoff_ms`` (unix ms) and can go without losing anything: gate
        events whose outbox rows were all delivered (with those rows and their record numbers), unless
        the event is what says a vehicle is inside or its booking is not settled; manual-action audit
        rows; chain transactions of ours that are settled and carried only delivered rows; settled
        bookings and unused rental events whose window ended (with their reorg history). At most
        ``batch`` rows per transaction, ``pause_s`` between them (the lanes' writes get the lock); the
        candidates are found outside the write lock. ``dry_run``: count, change nothing. ``stopped()``
        true ends the run after the batch in hand (the daemon stops): what is left goes the next time."""
        counts = dict.fromkeys(PRUNED_TABLES, 0)
        params = {"cutoff": cutoff_ms, "batch": batch}
        after = 0
        while seqs := [seq for (seq,) in self.conn.execute(_EXPIRED_EVENTS, params | {"after": after})]:
            after = seqs[-1]
            for table, n in self._prune_events(cutoff_ms, seqs, dry_run).items():
                counts[table] += n
            if stopped():
                break
            time.sleep(pause_s)
        for table, expired in _EXPIRED_ROWS.items():
            counts[table] = self._prune_rows(cutoff_ms, table, expired, batch, pause_s, dry_run, stopped)
        old = self.conn.execute("SELECT count(*) FROM gate_events WHERE occurred_at_ms < ?",
                                (cutoff_ms,)).fetchone()[0]
        kept = int(old) - (counts["gate_events"] if dry_run else 0)
        return PrunedRows(cutoff_ms, dry_run, kept=kept, **counts)

    def _prune_events(self, cutoff_ms: int, seqs: list[int], dry_run: bool) -> dict[str, int]:
        """One batch of expired gate events (checked again under the write lock) with their outbox rows
        and those rows' record numbers (the highest number stays: the next one is assigned above it)."""
        params: dict[str, Any] = {"cutoff": cutoff_ms, "seqs": json.dumps(seqs)}
        with self._retention(cutoff_ms, dry_run) as c:
            events = [e for (e,) in c.execute(_EXPIRED_IN_BATCH, params)]
            ids = [i for (i,) in c.execute("SELECT id FROM outbox WHERE event_id IN (SELECT value FROM "
                                           "json_each(?)) AND status = 'done'", (json.dumps(events),))]
            numbered = ("FROM chain_seqs WHERE outbox_id IN (SELECT value FROM json_each(?)) AND seq < "
                        "(SELECT max(seq) FROM chain_seqs)")
            seqs_gone = c.execute(f"SELECT count(*) {numbered}", (json.dumps(ids),)).fetchone()[0]
            if not dry_run:
                listed = "IN (SELECT value FROM json_each(?))"
                c.execute(f"DELETE FROM gate_events WHERE event_id {listed}", (json.dumps(events),))
                c.execute(f"DELETE {numbered}", (json.dumps(ids),))
                c.execute(f"DELETE FROM outbox WHERE id {listed}", (json.dumps(ids),))
        return {"gate_events": len(events), "outbox": len(ids), "chain_seqs": int(seqs_gone)}

    def _prune_rows(self, cutoff_ms: int, table: str, expired: str, batch: int, pause_s: float,
                    dry_run: bool, stopped: Callable[[], bool]) -> int:
        """Rows ``t`` of ``table`` for which ``expired`` holds, ``batch`` per transaction (found outside
        the write lock, checked again under it)."""
        params: dict[str, Any] = {"cutoff": cutoff_ms, "batch": batch}
        found = f"SELECT t.rowid FROM {table} AS t WHERE {expired}"
        if dry_run:
            return int(self.conn.execute(f"SELECT count(*) FROM ({found})", params).fetchone()[0])
        total = 0
        while rowids := [r for (r,) in self.conn.execute(f"{found} ORDER BY t.rowid LIMIT :batch", params)]:
            with self._retention(cutoff_ms, dry_run) as c:
                listed = "t.rowid IN (SELECT value FROM json_each(:rowids))"
                n = c.execute(f"DELETE FROM {table} AS t WHERE {listed} AND {expired}",
                              params | {"rowids": json.dumps(rowids)}).rowcount
            total += n
            if n == 0 or stopped():
                break
            time.sleep(pause_s)
        return total

    @contextmanager
    def _retention(self, cutoff_ms: int, dry_run: bool) -> Iterator[sqlite3.Connection]:
        """One pruning transaction: the append-only tables' triggers take a DELETE of rows older than
        ``cutoff_ms`` while it runs (``store_retention``, schema V8); a dry run only reads."""
        if dry_run:
            yield self.conn
            return
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO store_retention (id, cutoff_ms) VALUES (1, ?)", (cutoff_ms,))
            yield c
            c.execute("DELETE FROM store_retention")

    # -- clock floor (edge.clock) -------------------------------------------------------------------

    def clock_floor(self) -> int:
        """The newest time this store has seen (unix ms): the wall-clock sanity floor's stored part."""
        row = self.conn.execute("SELECT floor_ms FROM clock_floor WHERE id = 1").fetchone()
        return int(row[0]) if row else 0

    def raise_clock_floor(self, at_ms: int) -> None:
        """A time known to have passed (a chain block's timestamp, the daemon's best time)."""
        with self.transaction() as c:
            c.execute("UPDATE clock_floor SET floor_ms = ? WHERE id = 1 AND floor_ms < ?", (at_ms, at_ms))

    # -- health ------------------------------------------------------------------------------------

    # -- allow and deny lists ---------------------------------------------------------------------

    def put_list_entry(self, entry: ListEntry) -> None:
        """Add an entry, or replace the validity, note and source of the same list's same entry."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO access_list_entries (list_name, entry, valid_from_ms, valid_until_ms, note, "
                "source, updated_at_ms) VALUES (?,?,?,?,?,?,?) ON CONFLICT(list_name, entry) DO UPDATE SET "
                "valid_from_ms=excluded.valid_from_ms, valid_until_ms=excluded.valid_until_ms, "
                "note=excluded.note, source=excluded.source, updated_at_ms=excluded.updated_at_ms",
                (entry.list_name, entry.entry, entry.valid_from_ms, entry.valid_until_ms, entry.note,
                 entry.source, self.clock()))

    def remove_list_entry(self, list_name: str, entry: str) -> bool:
        """Remove an entry; False when the list did not hold it."""
        with self.transaction() as conn:
            cursor = conn.execute("DELETE FROM access_list_entries WHERE list_name = ? AND entry = ?",
                                  (list_name, entry))
        return cursor.rowcount > 0

    def list_entries(self, list_name: str | None = None) -> list[ListEntry]:
        """Every stored entry (of one list, or both), in list then entry order."""
        where, params = ("list_name = ?", [list_name]) if list_name else (None, [])
        return [_list_entry(r) for r in self.db["access_list_entries"].rows_where(
            where, params, order_by="list_name, entry")]

    def listed_at(self, at_ms: int) -> list[tuple[str, str]]:
        """``(list_name, entry)`` of the entries in force at ``at_ms``: what the daemon reads before each
        decision (plain tuples: no row objects on that path)."""
        rows = self.conn.execute(
            "SELECT list_name, entry FROM access_list_entries WHERE (valid_from_ms IS NULL OR "
            "valid_from_ms <= ?) AND (valid_until_ms IS NULL OR ? < valid_until_ms)", (at_ms, at_ms))
        return [(str(name), str(entry)) for name, entry in rows]

    def counts(self) -> dict[str, int]:
        """Row counts for health/metrics: each table, plus ``outbox.<destination>.<status>``, plus
        ``gate_events_recorded``: every gate event ever recorded (the retention deletes rows, never this)."""
        tables = ("lots", "spaces", "rental_events", "bookings", "gate_events", "outbox", "chain_blocks")
        result = {t: self.db[t].count for t in tables}
        recorded = self.conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'gate_events'").fetchone()
        result["gate_events_recorded"] = int(recorded[0]) if recorded else 0
        for dest, status, n in self.conn.execute(
                "SELECT destination, status, count(*) FROM outbox GROUP BY destination, status"):
            result[f"outbox.{dest}.{status}"] = n
        return result


def _unwritable(path: Path, exc: sqlite3.DatabaseError) -> str:
    """Why the store cannot be written, naming its owner and mode and the fix."""
    try:
        st = path.stat()
        owner, mode = f"{user_name(st.st_uid)}:{group_name(st.st_gid)}", f"{st.st_mode & 0o7777:04o}"
    except OSError:
        owner, mode = "?", "?"
    me, group = user_name(os.geteuid()), group_name(os.getegid())
    if _read_only_fs(path.parent):
        fix = f"remount the file system of {path.parent} read-write (or point gateway.state_dir elsewhere)"
    else:
        fix = (f"chown {me}:{group} {path}*; chmod 0600 {path} (a `parkgate store` "
               "command run as another user? run them as `sudo -u parkgate parkgate store ...`)")
    return (f"store {path} cannot be written by {me} (uid {os.geteuid()}): {exc}; it belongs to {owner}, "
            f"mode {mode}. Fix: {fix}")


def owner_of(path: Path) -> os.stat_result:
    """Whose store files these are: the store's owner, or its directory's while there is no store. The
    commands that write it run as that user (or, as root, hand new files to it)."""
    return path.stat() if path.exists() else path.parent.stat()


def user_name(uid: int) -> str:
    """The account name of ``uid``, or the number when it has none (also used by the doctor)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def group_name(gid: int) -> str:
    """The group name of ``gid``, or the number when it has none."""
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _read_only_fs(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def split_sql(script: str) -> list[str]:
    """The complete statements of a script (trigger bodies with inner ';' stay whole)."""
    statements, start = [], 0
    for end, char in enumerate(script):
        if char == ";" and sqlite3.complete_statement(script[start:end + 1]):
            statement = script[start:end + 1].strip()
            if statement.strip(";").strip():
                statements.append(statement)
            start = end + 1
    tail = [line for line in script[start:].splitlines()
            if line.strip() and not line.strip().startswith("--")]
    if tail:
        raise ValueError(f"incomplete SQL statement: {' '.join(tail)[:80]!r}")
    return statements


def _rental_event(r: dict[str, Any]) -> RentalEvent:
    fields = {k: v for k, v in r.items() if k != "updated_at_ms"}
    return RentalEvent(**fields | {"price_wei": int(r["price_wei"])})


def _booking(r: dict[str, Any]) -> Booking:
    return Booking(**{k: v for k, v in r.items() if k != "updated_at_ms"})


def _gate_event(r: dict[str, Any]) -> GateEventRow:
    return GateEventRow(**{k: v for k, v in r.items() if k != "seq"})


# What an operator may do with a given-up outbox row: (only this destination's, only in these states,
# past tense). A dead row cannot be sent, so it cannot be retried: it can only be dropped.
OUTBOX_ACTIONS: dict[str, tuple[str | None, tuple[str, ...], str]] = {
    "drop": (None, OUTBOX_GIVEN_UP, "dropped"),
    "retry": (CHAIN_DESTINATION, ("rejected",), "retried"),
}


def _refused(verb: str, row: dict[str, Any]) -> str | None:
    """Why ``verb`` may not take this outbox row (a row joined to the id asked for), or None."""
    destination, states, _ = OUTBOX_ACTIONS[verb]
    if row["status"] is None:
        return "no such row"
    if destination and row["destination"] != destination:
        return f"a {row['destination']} row, {row['status']}"
    if row["status"] not in states:
        return "dead: it cannot be sent" if row["status"] == "dead" and verb == "retry" else row["status"]
    return None


# An UPDATE's assignment that adds one OutboxAction to a row's operator_actions, from the row's state
# before the UPDATE (SQLite evaluates every assignment against the old row); parameters: at_ms, action, who.
_ACTION_APPENDED = ("operator_actions = json_insert(operator_actions, '$[#]', json_object('at_ms', ?, "
                    "'action', ?, 'who', ?, 'was', status || ': ' || coalesce(last_error, '-')))")


def _outbox(r: dict[str, Any]) -> OutboxRow:
    return OutboxRow(id=r["id"], destination=r["destination"], event_id=r["event_id"],
                     payload=json.loads(r["payload"]), created_at_ms=r["created_at_ms"], status=r["status"],
                     attempts=r["attempts"], sent_ref=r["sent_ref"], ack_ref=r["ack_ref"],
                     last_error=r["last_error"], operator_actions=_actions(r.get("operator_actions")))


def _actions(text: str | None) -> tuple[OutboxAction, ...]:
    """A row's operator_actions (a JSON array, checked by the schema). An entry edited by hand into
    another shape is kept as an "unreadable" action holding its JSON: reading the outbox (the sync reads
    it) never fails on the audit."""
    actions = []
    for entry in json.loads(text or "[]"):
        try:
            actions.append(OutboxAction(int(entry["at_ms"]), str(entry["action"]), str(entry["who"]),
                                        str(entry["was"])))
        except (TypeError, KeyError, ValueError):
            actions.append(OutboxAction(0, "unreadable", "", json.dumps(entry)))
    return tuple(actions)


__all__ = ["ACTIVE_BOOKING_STATUSES", "LATEST_VERSION", "PrunedRows", "Store", "StoreError",
           "StoreVersionError", "wall_clock_ms"]


def _list_entry(r: dict[str, Any]) -> ListEntry:
    return ListEntry(**{k: v for k, v in r.items() if k != "updated_at_ms"})
