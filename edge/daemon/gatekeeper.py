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
- :meth:`Gatekeeper.recover`: at start, before any lane runs, every journaled pass a dead daemon left.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from edge.access import Policy, Presence, committed_candidates, decide
from edge.access.types import Decision, Direction
from edge.daemon.records import (
    apply_rows,
    booking_views,
    destinations_for,
    journal_row,
    presence_from_events,
    rows_for_journaled_pass,
    rows_for_pass,
)
from edge.identity import Commit, normalise_plate
from edge.lanes.machine import Outcome, PassRecord
from edge.store import GateEventRow, Store, new_event_id, wall_clock_ms
from edge.vision.types import PlateRead

log = logging.getLogger(__name__)


class Gatekeeper:
    def __init__(self, store: Store, policy: Policy, commit: Commit, *, chain_on: bool, mqtt_on: bool,
                 on_recorded: Callable[[], None] = lambda: None) -> None:
        self.store = store
        self.policy = policy
        self.commit = commit
        self.chain_on = chain_on
        self.mqtt_on = mqtt_on  # the daemon sets it to whether the broker link really started
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
        entries = self.store.list_entries_valid_at(now_ms)
        return self.policy.with_listed((e.entry for e in entries if e.list_name == "allow"),
                                       (e.entry for e in entries if e.list_name == "deny"))

    def decide(self, read: PlateRead, direction: Direction) -> Decision:
        """From the local cache only: the read's confusable candidates' bookings, then the pure rule."""
        now = wall_clock_ms()
        policy = self.live_policy(now)
        try:
            matches = committed_candidates(normalise_plate(read.text), policy, self.commit)
        except ValueError:
            matches = ()  # no plate: decide() says so without candidates
        rows = self.store.bookings_for_commitments(policy.lot_id, [m.commitment for m in matches])
        return decide(read, now, booking_views(rows), self.presence, policy,
                      direction=direction, commit=self.commit, matches=matches or None)

    def journal(self, opening: PassRecord) -> None:
        """Commit the granted pass before its gate opens; raises (the gate stays shut) if that fails."""
        self.store.journal_pass(opening.pass_no, journal_row(opening, new_event_id(opening.ended_ms)))

    def journal_opened(self, lane: str, pass_no: int) -> None:
        """The controller acknowledged the open of a journaled pass."""
        self.store.mark_journaled_pass_opened(lane, pass_no)

    def record(self, record: PassRecord) -> None:
        """The pass and its outbox rows in one transaction; then who is inside, then wake the senders."""
        decision = record.decision
        booking = self.store.booking(decision.booking_id) if decision and decision.booking_id else None
        rows = rows_for_pass(record, new_event_id, booking.status if booking else None)
        with self.store.transaction():
            self._store_rows(rows)
            self.store.clear_journaled_pass(record.lane_id, record.pass_no)
        self.recorded += len(rows)
        if record.outcome is Outcome.PASSED:
            self.presence = apply_rows(self.presence, rows)
        self.on_recorded()

    def recover(self) -> int:
        """Call once at start, before the lanes run: every journaled pass left by a dead daemon becomes
        recorded rows, atomically with its journal row's deletion; then who is inside is rebuilt from
        the gate log. Returns how many passes were recovered."""
        leftovers = self.store.journaled_passes()
        with self.store.transaction():
            for pass_no, opened, row in leftovers:
                booking = self.store.booking(row.booking_id) if row.booking_id else None
                rows = rows_for_journaled_pass(row, opened, new_event_id, booking.status if booking else None)
                self._store_rows(rows)
                self.store.clear_journaled_pass(row.lane, pass_no)
                log.warning("lane %s: pass %s granted before a restart and never recorded: recorded now as "
                            "%s (%s)", row.lane, row.event_id, rows[-1].kind, rows[-1].reason)
        self.presence = presence_from_events(self._all_rows())
        return len(leftovers)

    def _store_rows(self, rows: list[GateEventRow]) -> None:
        """Inside the caller's transaction: each row with its outbox rows."""
        for row in rows:
            self.store.record_gate_event(row, destinations_for(row, self.chain_on, self.mqtt_on))
