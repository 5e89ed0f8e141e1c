"""Pure daemon rules around the store rows (no I/O).

- the rows one pass becomes (``edge.lanes.records.stored_gate_event``), preceded by the plate
  verification (second association) when an admitted booking was not verified yet;
- the pass journal row of a granted pass (the row it becomes if the daemon dies before recording
  it) and the rows such a leftover becomes at the next start (see ``edge.daemon.service``);
- the destinations each row is queued for;
- who is inside, derived from the append-only gate log (a restart after a crash rebuilds it exactly).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from edge.access.sessions import Presence, apply_pass
from edge.access.types import Decision, Direction, Reason
from edge.lanes.machine import GateEvent as PassRecord
from edge.lanes.machine import Outcome
from edge.lanes.records import stored_gate_event
from edge.store import GateEvent

# Gate record kinds the rental contract accepts (RecordKind); each needs a booking.
CHAIN_KINDS = frozenset({"verified", "check_in", "check_out", "denied"})
# The outcome part of the reason of a pass recovered from the journal after a restart: the open was
# acknowledged (passage assumed), or not (the gate may not have opened: a fault, no passage).
RESTART_OUTCOME = "passage_unconfirmed_restart"
UNACKED_RESTART_OUTCOME = "open_unconfirmed_restart"


def rows_for_pass(record: PassRecord, new_id: Callable[[int], str],
                  booking_status: str | None) -> list[GateEvent]:
    """The store rows of one pass, oldest first."""
    return with_verification(stored_gate_event(record, new_id(record.ended_ms)), new_id, booking_status)


def with_verification(row: GateEvent, new_id: Callable[[int], str],
                      booking_status: str | None) -> list[GateEvent]:
    """``row`` preceded by the plate verification (second association) when it admits a booking
    that was not verified yet."""
    if row.kind == "check_in" and row.booking_id and booking_status == "requested":
        verified = replace(row, event_id=new_id(row.occurred_at_ms), kind="verified", reason="plate_verified")
        return [verified, row]
    return [row]


def journal_row(opening: PassRecord, event_id: str) -> GateEvent:
    """The journal row of a pass whose gate is about to open: the row it becomes if it is never
    recorded (passage assumed, reason ``passage_unconfirmed_restart,<decision reason>[,flags]``)."""
    row = stored_gate_event(replace(opening, outcome=Outcome.PASSED), event_id)
    return replace(row, reason=_with_outcome(RESTART_OUTCOME, row.reason))


def rows_for_journaled_pass(row: GateEvent, opened: bool, new_id: Callable[[int], str],
                            booking_status: str | None) -> list[GateEvent]:
    """The store rows of a journal row left by a dead daemon, oldest first. Acknowledged open:
    passage assumed (the row as journaled, verified first when due). No acknowledgement: the gate
    may never have opened, so a ``fault`` (no check-in, no billing, no anti-passback) that keeps
    the grant on record."""
    if opened:
        return with_verification(row, new_id, booking_status)
    return [replace(row, kind="fault", reason=_with_outcome(UNACKED_RESTART_OUTCOME, row.reason))]


def _with_outcome(outcome: str, reason: str) -> str:
    return ",".join([outcome, *reason.split(",")[1:]])


def destinations_for(row: GateEvent, chain: bool, mqtt: bool) -> tuple[str, ...]:
    """Every row goes to MQTT (when on); the contract takes booking-bound record kinds only."""
    out = []
    if chain and row.kind in CHAIN_KINDS and row.booking_id and row.plate_commitment:
        out.append("chain")
    if mqtt:
        out.append("mqtt")
    return tuple(out)


def presence_from_events(rows: Iterable[GateEvent]) -> Presence:
    """Who is inside after these recorded rows (oldest first)."""
    return apply_rows(Presence(), rows)


def apply_rows(presence: Presence, rows: Iterable[GateEvent]) -> Presence:
    """``presence`` after the passages among ``rows`` (oldest first)."""
    for row in rows:
        if row.kind not in ("check_in", "check_out") or row.plate_commitment is None:
            continue
        decision = Decision(True, Reason.BOOKING_VALID, None, row.booking_id, commitment=row.plate_commitment)
        presence, _ = apply_pass(presence, decision, Direction(row.direction), row.occurred_at_ms, row.lane)
    return presence
