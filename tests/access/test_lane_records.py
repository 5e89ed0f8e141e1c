"""Lane gate events as store rows: kinds, reasons, and malformed evidence never losing the event."""

from dataclasses import replace

import pytest

from edge.access.types import Decision, Direction, Flag, Reason
from edge.daemon.records import gate_event_row
from edge.lanes.machine import Outcome, PassRecord, Snapshot
from edge.vision.types import PlateRead

C = "0x" + "ab" * 32
SNAPSHOT = Snapshot("/snap/a.jpg", "12" * 32)
ALLOW = Decision(True, Reason.SESSION_EXIT, None, "b1", "AB123CD", C, 0.0, (Flag.OVERSTAY,))


def event(outcome: Outcome, decision: Decision | None = ALLOW, direction: Direction = Direction.EXIT,
          read: PlateRead | None = None, snapshot: Snapshot | None = SNAPSHOT) -> PassRecord:
    read = read or PlateRead("AB123CD", 0.9, ())
    return PassRecord("exit-1", direction, 3, outcome, 100, 200, read, decision, snapshot=snapshot)


@pytest.mark.parametrize("outcome, decision, direction, kind", [
    (Outcome.PASSED, ALLOW, Direction.EXIT, "check_out"),
    (Outcome.PASSED, ALLOW, Direction.ENTRY, "check_in"),
    (Outcome.PASSED, Decision(True, Reason.MANUAL_OPEN, None), Direction.ENTRY, "manual"),
    (Outcome.GATE_FAULT, ALLOW, Direction.EXIT, "fault"),
    (Outcome.NO_PASSAGE, ALLOW, Direction.EXIT, "fault"),
    (Outcome.DENIED, Decision(False, Reason.EXPIRED, None), Direction.ENTRY, "denied"),
    (Outcome.NO_READ, None, Direction.ENTRY, "denied"),
    (Outcome.DEBOUNCED, None, Direction.ENTRY, "denied"),
])
def test_kinds(outcome: Outcome, decision: Decision | None, direction: Direction, kind: str) -> None:
    assert gate_event_row(event(outcome, decision, direction), "01J0000000000000000000000A").kind == kind


def test_fields_and_reason() -> None:
    row = gate_event_row(event(Outcome.PASSED), "01J0000000000000000000000A")
    assert (row.lane, row.direction, row.occurred_at_ms, row.booking_id) == ("exit-1", "exit", 200, "b1")
    assert row.reason == "passed,session_exit,overstay"
    assert (row.plate_commitment, row.plate_masked) == (C, "AB***D")
    assert (row.evidence_path, row.evidence_sha256, row.confidence) == ("/snap/a.jpg", "12" * 32, 0.9)


def test_a_late_open_is_a_passage_whose_reason_says_so() -> None:
    """A controller that acknowledged 1.5 s late opened the gate: the pass is what happened, a
    check-out, marked ``opened_late`` (not a fault)."""
    row = gate_event_row(replace(event(Outcome.PASSED), late_ack_ms=1_500), "01J0000000000000000000000A")
    assert (row.kind, row.reason) == ("check_out", "passed,session_exit,overstay,opened_late")


def test_malformed_evidence_is_dropped_not_the_event() -> None:
    bad = PlateRead("#?", float("nan"), ())
    malformed = Snapshot("/snap/b.jpg", "not-a-hash")
    row = gate_event_row(event(Outcome.NO_READ, None, read=bad, snapshot=malformed),
                         "01J0000000000000000000000A")
    assert (row.plate_masked, row.confidence, row.evidence_sha256) == (None, None, None)
    assert row.reason == "no_read"
    overconfident = event(Outcome.PASSED, read=PlateRead("AB1", 1.7))
    assert gate_event_row(overconfident, "01J000000000000000000000AA").confidence == 1.0
