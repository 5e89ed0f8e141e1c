"""Pure daemon rules around the store rows (no I/O): the one place a pass becomes stored rows.

- the row of one pass (:func:`gate_event_row`): kinds, a passage is ``check_in``/``check_out``
  (``manual`` when an operator opened), a gate that failed or opened for nobody is ``fault``,
  everything that did not open is ``denied``; ``reason`` is ``outcome,decision-reason[,flags...]``
  (stable strings, no plate), with ``opened_late`` last when the gate acknowledged the open late;
  the plate itself is kept only masked, with its commitment; the snapshot path and hash stay as
  evidence. No plain plate leaves this module;
- the rows one pass becomes, the row above preceded by the plate verification (second
  association) when an admitted booking was not verified yet, and an exit preceded by the check-in
  it proves when its entry was recorded unconfirmed at a restart (:func:`rows_for_pass`);
- the pass journal row of a granted pass (the row it becomes if the daemon dies before recording
  it) and the rows such a leftover becomes at the next start (see ``edge.daemon.service``);
- the destinations each row is queued for;
- who is inside, derived from the append-only gate log (a restart after a crash rebuilds it exactly);
- the part of a cached booking the access decision needs (:func:`booking_views`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import replace

from edge.access.sessions import Presence, apply_pass
from edge.access.types import ENTRY_STATUSES, BookingStatus, BookingView, Decision, Direction, Reason
from edge.identity import mask_plate_or_none
from edge.lanes.machine import Outcome, PassRecord
from edge.store.rows import Booking, GateEventRow

# Gate record kinds the rental contract accepts (RecordKind); each needs a booking.
CHAIN_KINDS = frozenset({"verified", "check_in", "check_out", "denied"})
# The outcome part of the reason of a pass recovered from the journal after a restart: the open was
# acknowledged (passage assumed), or not (the gate may not have opened: a fault, no passage).
RESTART_OUTCOME = "passage_unconfirmed_restart"
UNACKED_RESTART_OUTCOME = "open_unconfirmed_restart"
OPENED_LATE = "opened_late"  # the reason's last part when the gate acknowledged the open late
# The outcome part of the reason of an entry check-in proven by the car's exit (its entry was recorded
# ``open_unconfirmed_restart``: the daemon died before the gate acknowledged the open).
PROVEN_AT_EXIT_OUTCOME = "passage_proven_at_exit"
NOT_CHECKED_IN = frozenset({"requested", "verified"})  # booking statuses before a check-in
_SHA256 = re.compile(r"[0-9a-f]{64}")
_FAULTS = {Outcome.GATE_FAULT, Outcome.NO_PASSAGE}


def _kind(event: PassRecord) -> str:
    if event.outcome in _FAULTS:
        return "fault"
    if event.outcome is not Outcome.PASSED:
        return "denied"
    if event.decision is not None and event.decision.reason is Reason.MANUAL_OPEN:
        return "manual"
    return "check_in" if event.direction is Direction.ENTRY else "check_out"


def _reason(event: PassRecord) -> str:
    decision = event.decision
    parts = [event.outcome.value]
    if decision is not None:
        parts += [decision.reason.value, *(f.value for f in decision.flags)]
    if event.late_ack_ms is not None:
        parts.append(OPENED_LATE)
    return ",".join(parts)


def gate_event_row(event: PassRecord, event_id: str) -> GateEventRow:
    """The store row for ``event``; malformed evidence fields become None instead of losing the event."""
    read, decision = event.read, event.decision
    confidence = read.confidence if read is not None and math.isfinite(read.confidence) else None
    snapshot = event.snapshot
    sha = snapshot.sha256 if snapshot is not None else None
    masked = mask_plate_or_none(read.text) if read is not None else None
    return GateEventRow(
        event_id=event_id,
        lane=event.lane_id,
        direction=event.direction.value,
        kind=_kind(event),
        reason=_reason(event),
        occurred_at_ms=event.ended_ms,
        booking_id=decision.booking_id if decision is not None else None,
        plate_commitment=decision.commitment if decision is not None else None,
        plate_masked=masked,
        confidence=None if confidence is None else min(1.0, max(0.0, confidence)),
        evidence_path=snapshot.path if snapshot is not None else None,
        evidence_sha256=sha if sha is not None and _SHA256.fullmatch(sha) else None,
    )


def rows_for_pass(record: PassRecord, new_id: Callable[[int], str], booking_status: str | None,
                  booking_last: GateEventRow | None = None) -> list[GateEventRow]:
    """The store rows of one pass, oldest first (``booking_last``: see :func:`with_proof_of_entry`)."""
    return with_proof_of_entry(gate_event_row(record, new_id(record.ended_ms)), new_id, booking_status,
                               booking_last)


def may_prove_entry(is_exit: bool, booking_status: str | None) -> bool:
    """An exit of a booking not checked in: the booking's last row may be an unconfirmed entry that the
    exit proves (:func:`with_proof_of_entry`); only then is that row worth looking up."""
    return is_exit and booking_status in NOT_CHECKED_IN


def with_proof_of_entry(row: GateEventRow, new_id: Callable[[int], str], booking_status: str | None,
                        booking_last: GateEventRow | None) -> list[GateEventRow]:
    """``row`` as :func:`with_verification` gives it; and a check-out of a booking not checked in whose
    last recorded row (``booking_last``) is an entry recorded unconfirmed at a restart (a fault: the gate
    may not have opened) preceded by the check-in that exit proves, dated when the entry's gate was opened.
    Without it the contract refuses the check-out (`BAD_STATE`, seen in `make chaos` on 2026-12-02) and
    the booking is never settled."""
    if (may_prove_entry(row.kind == "check_out", booking_status) and booking_last is not None
            and is_unconfirmed_entry(booking_last) and booking_last.booking_id == row.booking_id):
        reason = _with_outcome(PROVEN_AT_EXIT_OUTCOME, booking_last.reason)
        proven = replace(booking_last, event_id=new_id(booking_last.occurred_at_ms), kind="check_in",
                         reason=reason, recorded_at_ms=None)
        return [*with_verification(proven, new_id, booking_status), row]
    return with_verification(row, new_id, booking_status)


def is_unconfirmed_entry(row: GateEventRow) -> bool:
    """An entry granted before a restart whose open the gate never acknowledged (recorded as a fault)."""
    return (row.kind == "fault" and row.direction == Direction.ENTRY.value
            and row.reason.split(",")[0] == UNACKED_RESTART_OUTCOME)


def with_verification(row: GateEventRow, new_id: Callable[[int], str],
                      booking_status: str | None) -> list[GateEventRow]:
    """``row`` preceded by the plate verification (second association) when it admits a booking
    that was not verified yet."""
    if row.kind == "check_in" and row.booking_id and booking_status == "requested":
        verified = replace(row, event_id=new_id(row.occurred_at_ms), kind="verified", reason="plate_verified")
        return [verified, row]
    return [row]


def journal_row(opening: PassRecord, event_id: str) -> GateEventRow:
    """The journal row of a pass whose gate is about to open: the row it becomes if it is never
    recorded (passage assumed, reason ``passage_unconfirmed_restart,<decision reason>[,flags]``)."""
    row = gate_event_row(replace(opening, outcome=Outcome.PASSED), event_id)
    return replace(row, reason=_with_outcome(RESTART_OUTCOME, row.reason))


def rows_for_journaled_pass(row: GateEventRow, opened: bool, new_id: Callable[[int], str],
                            booking_status: str | None,
                            booking_last: GateEventRow | None = None) -> list[GateEventRow]:
    """The store rows of a journal row left by a dead daemon, oldest first. Acknowledged open:
    passage assumed (the row as journaled, verified first when due, an exit preceded by the entry it
    proves: :func:`with_proof_of_entry`). No acknowledgement: the gate may never have opened, so a
    ``fault`` (no check-in, no billing, no anti-passback) that keeps the grant on record."""
    if opened:
        return with_proof_of_entry(row, new_id, booking_status, booking_last)
    return [replace(row, kind="fault", reason=_with_outcome(UNACKED_RESTART_OUTCOME, row.reason))]


def _with_outcome(outcome: str, reason: str) -> str:
    return ",".join([outcome, *reason.split(",")[1:]])


def destinations_for(row: GateEventRow, chain: bool, mqtt: bool) -> tuple[str, ...]:
    """Every row goes to MQTT (when on); the contract takes booking-bound record kinds only."""
    out = []
    if chain and row.kind in CHAIN_KINDS and row.booking_id and row.plate_commitment:
        out.append("chain")
    if mqtt:
        out.append("mqtt")
    return tuple(out)


def presence_from_events(rows: Iterable[GateEventRow]) -> Presence:
    """Who is inside after these recorded rows (oldest first)."""
    return apply_rows(Presence(), rows)


def apply_rows(presence: Presence, rows: Iterable[GateEventRow]) -> Presence:
    """``presence`` after the passages among ``rows`` (oldest first)."""
    for row in rows:
        if row.kind not in ("check_in", "check_out") or row.plate_commitment is None:
            continue
        decision = Decision(True, Reason.BOOKING_VALID, None, row.booking_id, commitment=row.plate_commitment)
        presence, _ = apply_pass(presence, decision, Direction(row.direction), row.occurred_at_ms, row.lane)
    return presence


def booking_view(row: Booking, checked_out_here: bool = False) -> BookingView:
    """The part of a cached booking the decision needs (status strings are shared with the store). A
    booking this gateway recorded the check-out of is checked out, whatever the cache still says: the
    chain's ``CheckedOut`` comes confirmations (or an outage) later, and a car that left and came back in
    the meantime would park on a booking the contract has closed (its second check-in refused, the owner
    paid for the minutes before the first exit)."""
    status = BookingStatus(row.status)
    if checked_out_here and status in ENTRY_STATUSES:
        status = BookingStatus.CHECKED_OUT
    return BookingView(row.booking_id, row.lot_id, row.vehicle_commitment, row.window_start_ms,
                       row.window_end_ms, status, row.space_id)


def booking_views(rows: Iterable[Booking], checked_out_here: Collection[str] = ()) -> list[BookingView]:
    return [booking_view(r, r.booking_id in checked_out_here) for r in rows]


# -- the journal line of a pass -------------------------------------------------------------------------

_OPENED = {Outcome.PASSED, Outcome.NO_PASSAGE}


def pass_log_fields(event: PassRecord, latency_ms: float | None) -> dict[str, str]:
    """The fields of the one journal line each vehicle gets (logfmt ``key=value``): lane, direction,
    masked plate, confidence, decision, reason, gate result, latency, where the read came from (the
    approach track or a burst). No plain plate."""
    decision, read = event.decision, event.read
    gate = ("opened" if event.outcome in _OPENED else
            "fault" if event.outcome is Outcome.GATE_FAULT else "shut")
    return {
        "lane": event.lane_id, "direction": str(event.direction), "pass": str(event.pass_no),
        "plate": (mask_plate_or_none(read.text) if read else None) or "-",
        "confidence": f"{read.confidence:.2f}" if read else "-",
        "decision": "-" if decision is None else "allow" if decision.allow else "deny",
        "reason": str(decision.reason) if decision else str(event.outcome),
        "outcome": str(event.outcome), "gate": gate,
        "latency_ms": "-" if latency_ms is None else f"{latency_ms:.0f}",
        "read": str(event.read_from or "-"),
    }


def logfmt(fields: dict[str, str]) -> str:
    """``key=value`` pairs, values with spaces or quotes quoted (journalctl and log tools parse these)."""
    def value(text: str) -> str:
        return text if text and not any(c in text for c in ' ="') else '"' + text.replace('"', '\\"') + '"'
    return " ".join(f"{key}={value(text)}" for key, text in fields.items())
