"""The lanes' one port to the local store: decide, journal, record, recover (no network on this path).

A :class:`Gatekeeper` owns the daemon's store connection on the event-loop thread, the access policy,
the commitment function and who is inside. Lane shells call it synchronously for every pass:

- :meth:`Gatekeeper.decide`: the read's confusable candidates' bookings from the cache, then the pure
  rule (``edge.access.decide``);
- :meth:`Gatekeeper.journal` / :meth:`Gatekeeper.journal_opened`: log the grant before actuating (the
  pass journal, ``edge.daemon.service`` explains the recovery rules), and mark it when the controller
  acknowledges the open;
- :meth:`Gatekeeper.record`: the pass's rows and their outbox rows in one transaction, then who is
  inside, then wake the senders;
- :meth:`Gatekeeper.recover`: at start, before any lane runs, every journaled pass a dead daemon left;
- :meth:`Gatekeeper.audit`: an operator's manual action (``edge.daemon.manual``) into the audit table.

Time: decisions use the daemon's best time (:class:`edge.clock.TrustedClock`), never the bare wall clock.

A store that cannot be written (full or read-only disk, I/O error): the journal write fails, so no gate
opens (fail-closed: no open without a durable record); a pass that cannot be recorded is kept in memory
(at most :data:`PENDING_MAX` passes; beyond that the oldest is dropped and counted) and written by
:meth:`Gatekeeper.flush` as soon as the store takes writes again. Its journal row, when it has one, is
already durable: a restart before the flush recovers it from the journal instead. An operator's manual
action waits in memory the same way: a full disk keeps the automatic gates shut, so an operator's open or
hold is then the way out, and its audit must not be lost (the system journal has its line at once).
"""

from __future__ import annotations

import logging
import sqlite3
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from edge.access import Policy, Presence, committed_candidates, decide
from edge.access.exits import LOT_RULES, LaneRules
from edge.access.types import Decision, Direction
from edge.clock import TrustedClock
from edge.daemon.records import (
    apply_rows,
    booking_views,
    destinations_for,
    journal_row,
    may_prove_entry,
    presence_from_events,
    rows_for_journaled_pass,
    rows_for_pass,
)
from edge.identity import Commit
from edge.lanes.machine import Outcome, PassRecord
from edge.store import GateEventRow, ManualActionRow, Store, new_event_id
from edge.vision.types import PlateRead

log = logging.getLogger(__name__)
PENDING_MAX = 1000
Kept = TypeVar("Kept")


@dataclass(frozen=True)
class PendingPass:
    """A pass the store could not take: its rows, and its journal row's key (cleared with them)."""

    lane: str
    pass_no: int
    rows: list[GateEventRow]


class Gatekeeper:
    def __init__(self, store: Store, policy: Policy, commit: Commit, *, chain_on: bool, mqtt_on: bool,
                 on_recorded: Callable[[], None] = lambda: None, clock: TrustedClock | None = None) -> None:
        self.store = store
        self.clock = clock or TrustedClock()
        self.pending: deque[PendingPass] = deque()
        self.audits: deque[ManualActionRow] = deque()  # manual actions the store could not take yet
        self.dropped = 0  # passes and manual actions never recorded: the in-memory queue was full
        self.store_error: str | None = None  # why the store refused the last write (None: writable)
        self.policy = policy
        self.commit = commit
        self.chain_on = chain_on
        self.mqtt_on = mqtt_on  # mqtt.enabled: rows wait in the outbox while the bridge is down or unstarted
        self.on_recorded = on_recorded
        self.recorded = 0
        self.presence = Presence()  # rebuilt from the gate log by recover()

    def _all_rows(self) -> Iterator[GateEventRow]:
        after = 0
        while page := self.store.gate_events(after_seq=after, limit=1000):
            for seq, row in page:
                after = seq
                yield row

    def live_policy(self, now_ms: int) -> Policy:
        """The policy with the store's allow/deny entries in force at ``now_ms``: a list change (`parkgate
        list`, a signed MQTT command) applies from the next decision, without a restart."""
        listed = self.store.listed_at(now_ms)
        return self.policy.with_listed((entry for name, entry in listed if name == "allow"),
                                       (entry for name, entry in listed if name == "deny"))

    def decide(self, read: PlateRead, direction: Direction, rules: LaneRules = LOT_RULES) -> Decision:
        """From the local cache only: the read's confusable candidates' bookings, then the pure rule
        (with the lane's own ``rules``: exit policy, anti-passback)."""
        now = self.clock.reading()
        policy = self.live_policy(now.best_ms)
        matches = committed_candidates(read.text, policy, self.commit)  # (): no plate, decide() says so
        rows = self.store.bookings_for_commitments(policy.lot_id, [m.commitment for m in matches])
        left = self.store.checked_out_here([r.booking_id for r in rows])
        return decide(read, now.best_ms, booking_views(rows, left), self.presence, policy,
                      direction=direction, commit=self.commit, matches=matches,
                      time_trusted=now.trusted, rules=rules)

    def journal(self, opening: PassRecord) -> None:
        """Commit the granted pass before its gate opens; raises (the gate stays shut) if that fails."""
        try:
            self.store.journal_pass(opening.pass_no, journal_row(opening, new_event_id(opening.ended_ms)))
        except sqlite3.OperationalError as exc:
            self._unwritable(exc)
            raise

    def journal_opened(self, lane: str, pass_no: int) -> None:
        """The controller acknowledged the open of a journaled pass."""
        self.store.mark_journaled_pass_opened(lane, pass_no)

    def record(self, record: PassRecord) -> None:
        """The pass and its outbox rows in one transaction; then who is inside, then wake the senders."""
        decision = record.decision
        status, last = self._booking_state(decision.booking_id if decision else None, record.direction)
        rows = rows_for_pass(record, new_event_id, status, last)
        if record.outcome is Outcome.PASSED:
            self.presence = apply_rows(self.presence, rows)
        lost = self._keep(self.pending, PendingPass(record.lane_id, record.pass_no, rows))
        if lost is not None:
            log.error("store unwritable: pass %s of lane %s dropped (%d passes already wait in memory)",
                      lost.pass_no, lost.lane, PENDING_MAX)
        self.flush()

    def audit(self, action: ManualActionRow) -> int | None:
        """Append an operator's manual action to the audit; returns its id, or None when it waits in
        memory for a store that refuses writes (written by :meth:`flush`, in order)."""
        if not self.audits:
            try:
                return self.store.record_manual_action(action)
            except sqlite3.OperationalError as exc:
                self._unwritable(exc)
        lost = self._keep(self.audits, action)
        if lost is not None:
            log.error("store unwritable: manual %s on lane %s by %s dropped from the audit (%d wait in "
                      "memory)", lost.action, lost.lane, lost.operator, PENDING_MAX)
        return None

    def _keep(self, queue: deque[Kept], item: Kept) -> Kept | None:
        """``item`` kept in memory for the store; the oldest one dropped (and counted) beyond PENDING_MAX."""
        queue.append(item)
        if len(queue) <= PENDING_MAX:
            return None
        self.dropped += 1
        return queue.popleft()

    def waiting(self) -> bool:
        """Whether passes or manual actions wait in memory for the store."""
        return bool(self.pending or self.audits)

    def flush(self) -> int:
        """Write the manual actions and passes waiting in memory, oldest first, each pass in one
        transaction with its journal row's deletion; stops at the first failure (the disk is still full
        or read-only). Returns how many passes were written. Called after each pass and by the daemon's
        status loop."""
        audited = self._flush_audits()
        if audited is None:
            return 0
        written = 0
        while self.pending:
            item = self.pending[0]
            try:
                with self.store.transaction():
                    self._store_rows(item.rows)
                    self.store.clear_journaled_pass(item.lane, item.pass_no)
            except sqlite3.OperationalError as exc:
                self._unwritable(exc)
                break
            except Exception:
                self.pending.popleft()  # not the disk: a row the store refuses would block all behind it
                raise
            self.pending.popleft()
            self.recorded += len(item.rows)
            written += 1
        if written or audited:
            if self.store_error is not None:
                log.warning("store writable again: %d pass(es) and %d manual action(s) recorded from memory",
                            written, audited)
            self.store_error = None
        if written:
            self.on_recorded()
        return written

    def _flush_audits(self) -> int | None:
        """Write the waiting manual actions; how many, or None when the store still refuses them."""
        written = 0
        while self.audits:
            try:
                self.store.record_manual_action(self.audits[0])
            except sqlite3.OperationalError as exc:
                self._unwritable(exc)
                return None
            except Exception:
                self.audits.popleft()  # not the disk: a row the store refuses would block all behind it
                raise
            action = self.audits.popleft()
            written += 1
            log.warning("manual %s on lane %s by %s audited now that the store takes writes again",
                        action.action, action.lane, action.operator)
        return written

    def _unwritable(self, exc: sqlite3.OperationalError) -> None:
        detail = f"store {self.store.path} refuses writes ({exc}): gates stay shut"
        if self.store_error is None:
            log.error("%s; free space or fix the file system", detail)
        self.store_error = detail

    def recover(self) -> int:
        """Call once at start, before the lanes run: every journaled pass left by a dead daemon becomes
        recorded rows, atomically with its journal row's deletion; then who is inside is rebuilt from
        the gate log. Returns how many passes were recovered."""
        leftovers = self.store.journaled_passes()
        with self.store.transaction():
            for pass_no, opened, row in leftovers:
                status, last = self._booking_state(row.booking_id, Direction(row.direction))
                rows = rows_for_journaled_pass(row, opened, new_event_id, status, last)
                self._store_rows(rows)
                self.store.clear_journaled_pass(row.lane, pass_no)
                log.warning("lane %s: pass %s granted before a restart and never recorded: recorded now as "
                            "%s (%s)", row.lane, row.event_id, rows[-1].kind, rows[-1].reason)
        self.presence = presence_from_events(self._all_rows())
        return len(leftovers)

    def _booking_state(self, booking_id: str | None,
                       direction: Direction) -> tuple[str | None, GateEventRow | None]:
        """The cached status of a pass's booking, and for an exit of a booking not checked in its last
        recorded row (which may be an unconfirmed entry the exit proves)."""
        booking = self.store.booking(booking_id) if booking_id else None
        if booking is None:
            return None, None
        if not may_prove_entry(direction is Direction.EXIT, booking.status):
            return booking.status, None
        return booking.status, self.store.last_gate_event_of_booking(booking.booking_id)

    def _store_rows(self, rows: list[GateEventRow]) -> None:
        """Inside the caller's transaction: each row with its outbox rows."""
        for row in rows:
            self.store.record_gate_event(row, destinations_for(row, self.chain_on, self.mqtt_on))
