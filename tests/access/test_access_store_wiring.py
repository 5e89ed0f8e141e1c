"""A lane deciding from a real SQLite store and recording there: the offline path end to end."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.access import Direction, Policy, Presence, commitment_function, committed_candidates, decide
from edge.access.types import Decision
from edge.config import LaneConfig
from edge.daemon.records import booking_views, gate_event_row
from edge.lanes.machine import (
    BurstDone,
    GateAck,
    LaneSettings,
    PassRecord,
    PresenceOff,
    PresenceOn,
    SafetyOff,
    SafetyOn,
    Snapshot,
)
from edge.lanes.runner import LaneRunner
from edge.store import Booking, RentalEvent, Store, new_event_id
from edge.vision.types import PlateRead

LOT = "LOT-1"
T0 = 1_790_000_000_000
HOUR = 3_600_000
commit = commitment_function(b"wiring-test-secret-0123456789", LOT)
POLICY = Policy(LOT)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "parkgate.sqlite", clock=lambda: T0)
    s.upsert_rental_event(RentalEvent("r1", "s1", LOT, "0x" + "11" * 20, T0, T0 + 2 * HOUR, 10**18, "booked",
                                      10, "0x" + "ab" * 32, 0))
    s.upsert_booking(Booking("b1", "r1", "s1", LOT, "0x" + "22" * 20, commit("AB123CD"), T0, T0 + HOUR,
                             "requested", 11, "0x" + "cd" * 32, 0))
    yield s
    s.close()


class StorePorts:
    def __init__(self, store: Store) -> None:
        self.store, self.gate = store, []

    def start_burst(self, burst_no: int, frames: int) -> None:
        self.gate.append("burst")

    def decide(self, pass_no: int, read: PlateRead) -> Decision:
        wanted = [m.commitment for m in committed_candidates(read.text, POLICY, commit)]
        cached = booking_views(self.store.bookings_for_commitments(LOT, wanted))
        return decide(read, T0 + 60_000, cached, Presence(), POLICY, direction=Direction.ENTRY, commit=commit)

    def open_pulse(self, ms: int) -> None:
        self.gate.append("open")

    def close(self) -> None:
        self.gate.append("close")

    def record(self, event: PassRecord) -> None:
        self.store.record_gate_event(gate_event_row(event, new_event_id(event.ended_ms)), ["mqtt"])

    def alert(self, code: str, detail: str) -> None:
        raise AssertionError(f"unexpected alert {code}: {detail}")


def test_fuzzy_read_opens_from_the_cache_and_is_recorded_without_the_plate(store: Store) -> None:
    ports = StorePorts(store)
    lane = LaneRunner(LaneSettings(LaneConfig(name="entry-1", direction="entry")), ports, lambda: T0 + 60_000)
    frames = tuple(PlateRead("A8123CD", 0.9, (0.9,) * 7) for _ in range(3))  # B misread as 8
    lane.feed(PresenceOn())
    lane.feed(BurstDone(1, frames, Snapshot("/var/lib/parkgate/snapshots/x.jpg", "ef" * 32)))
    for event in (GateAck(1), PresenceOff(), SafetyOn(), SafetyOff()):
        lane.feed(event)
    assert ports.gate == ["burst", "open", "close"]
    [(_, row)] = store.gate_events()
    assert (row.kind, row.booking_id, row.plate_commitment) == ("check_in", "b1", commit("AB123CD"))
    assert row.reason == "passed,booking_valid,fuzzy_match"
    assert (row.plate_masked, row.evidence_sha256) == ("A8***D", "ef" * 32)
    outbox = store.pending_outbox("mqtt")
    assert len(outbox) == 1
    text = json.dumps(outbox[0].payload)
    assert "A8123CD" not in text and "AB123CD" not in text


def test_unknown_vehicle_is_denied_and_recorded(store: Store) -> None:
    ports = StorePorts(store)
    lane = LaneRunner(LaneSettings(LaneConfig(name="entry-1", direction="entry")), ports, lambda: T0 + 60_000)
    lane.feed(PresenceOn())
    lane.feed(BurstDone(1, tuple(PlateRead("ZZ999", 0.9, (0.9,) * 5) for _ in range(2))))
    assert "open" not in ports.gate
    [(_, row)] = store.gate_events()
    assert (row.kind, row.reason, row.booking_id) == ("denied", "denied,no_booking", None)
    assert row.plate_masked == "ZZ***9" and row.evidence_path is None
