"""A lane's gate event as the store records it (pure): no plain plate leaves this function.

Kinds: a passage is ``check_in``/``check_out`` (``manual`` when an operator opened), a gate that
failed or opened for nobody is ``fault``, everything that did not open is ``denied``. ``reason`` is
``outcome,decision-reason[,flags...]`` (stable strings, no plate); the plate itself is kept only
masked, with its commitment; the snapshot path and hash stay as evidence.
"""

from __future__ import annotations

import math
import re

from edge.access.types import Direction, Reason
from edge.lanes.machine import GateEvent, Outcome
from edge.mqtt.privacy import mask_plate_or_none
from edge.store.rows import GateEvent as StoredGateEvent

_SHA256 = re.compile(r"[0-9a-f]{64}")
_FAULTS = {Outcome.GATE_FAULT, Outcome.NO_PASSAGE}


def _kind(event: GateEvent) -> str:
    if event.outcome in _FAULTS:
        return "fault"
    if event.outcome is not Outcome.PASSED:
        return "denied"
    if event.decision is not None and event.decision.reason is Reason.MANUAL_OPEN:
        return "manual"
    return "check_in" if event.direction is Direction.ENTRY else "check_out"


def _reason(event: GateEvent) -> str:
    decision = event.decision
    parts = [event.outcome.value]
    if decision is not None:
        parts += [decision.reason.value, *(f.value for f in decision.flags)]
    return ",".join(parts)


def stored_gate_event(event: GateEvent, event_id: str) -> StoredGateEvent:
    """The store row for ``event``; malformed evidence fields become None instead of losing the event."""
    read, decision = event.read, event.decision
    confidence = read.confidence if read is not None and math.isfinite(read.confidence) else None
    sha = read.snapshot_sha256 if read is not None else None
    masked = mask_plate_or_none(read.text) if read is not None else None
    return StoredGateEvent(
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
        evidence_path=read.snapshot_path if read is not None else None,
        evidence_sha256=sha if sha is not None and _SHA256.fullmatch(sha) else None,
    )
