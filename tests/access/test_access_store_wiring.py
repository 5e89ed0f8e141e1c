"""A lane deciding from a real SQLite store through the gatekeeper and recording there: the offline
path end to end (the gate and the camera in memory)."""

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.access import Policy, commitment_function
from edge.clock import TrustedClock
from edge.config import LaneConfig
from edge.daemon.gatekeeper import Gatekeeper
from edge.daemon.lane import LaneShell
from edge.lanes.machine import (
    BurstDone,
    LaneSettings,
    PresenceOff,
    PresenceOn,
    SafetyOff,
    SafetyOn,
    Snapshot,
)
from edge.store import Booking, RentalEvent, Store
from edge.vision.types import PlateRead

LOT = "LOT-1"
T0 = 1_800_000_000_000
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


class Gate:
    """A controller that acknowledges every command at once; notes them."""

    def __init__(self) -> None:
        self.commands: list[str] = []

    async def open_pulse(self, ms: int) -> None:
        self.commands.append("open")

    async def close(self) -> None:
        self.commands.append("close")


def drive(store: Store, reads: tuple[PlateRead, ...], snapshot: Snapshot | None, *events: object,
          direction: str = "entry") -> Gate:
    """One car at an entry (or an exit): on the loop, read as ``reads``, then ``events``; decided and
    recorded by the daemon's gatekeeper over ``store`` at T0 + 1 min."""
    gate = Gate()
    keeper = Gatekeeper(store, POLICY, commit, chain_on=False, mqtt_on=True,
                        clock=TrustedClock(wall=lambda: T0 + 60_000))

    def unexpected(lane: str, code: str, detail: str) -> None:
        raise AssertionError(f"unexpected alert {code}: {detail}")

    async def scenario() -> None:
        settings = LaneSettings(LaneConfig(name=f"{direction}-1", direction=direction))
        lane = LaneShell(settings, gate,  # type: ignore[arg-type]
                         lambda burst_no, frames: BurstDone(burst_no, reads, snapshot), keeper, unexpected)
        lane.feed(PresenceOn())
        for _ in range(20):
            await asyncio.sleep(0.01)
        for event in events:
            lane.feed(event)  # type: ignore[arg-type]
        await asyncio.sleep(0.01)
        await lane.aclose()

    asyncio.run(scenario())
    return gate


def test_fuzzy_read_opens_from_the_cache_and_is_recorded_without_the_plate(store: Store) -> None:
    frames = tuple(PlateRead("A8123CD", 0.9, (0.9,) * 7) for _ in range(3))  # B misread as 8
    gate = drive(store, frames, Snapshot("/var/lib/parkgate/snapshots/x.jpg", "ef" * 32),
                 PresenceOff(), SafetyOn(), SafetyOff())
    assert gate.commands == ["open", "close"]
    [(_, verified), (_, row)] = store.gate_events()  # the booking was only requested: verified first
    assert (verified.kind, verified.booking_id) == ("verified", "b1")
    assert (row.kind, row.booking_id, row.plate_commitment) == ("check_in", "b1", commit("AB123CD"))
    assert row.reason == "passed,booking_valid,fuzzy_match"
    assert (row.plate_masked, row.evidence_sha256) == ("A8***D", "ef" * 32)
    outbox = store.pending_outbox("mqtt")
    assert len(outbox) == 2
    text = json.dumps([item.payload for item in outbox])
    assert "A8123CD" not in text and "AB123CD" not in text


def test_unknown_vehicle_is_denied_and_recorded(store: Store) -> None:
    gate = drive(store, tuple(PlateRead("ZZ999", 0.9, (0.9,) * 5) for _ in range(2)), None)
    assert "open" not in gate.commands
    [(_, row)] = store.gate_events()
    assert (row.kind, row.reason, row.booking_id) == ("denied", "denied,no_booking", None)
    assert row.plate_masked == "ZZ***9" and row.evidence_path is None


def test_a_car_that_left_cannot_come_back_in_on_the_same_booking(store: Store) -> None:
    """The contract takes one check-in and one check-out per booking. A car that left and drove back in
    before the chain's CheckedOut reached the cache parked on a closed booking: its second check-in was
    refused on chain and the owner paid for the minutes before the first exit."""
    frames = tuple(PlateRead("AB123CD", 0.95, (0.95,) * 7) for _ in range(3))
    passage = (PresenceOff(), SafetyOn(), SafetyOff())
    assert drive(store, frames, None, *passage).commands == ["open", "close"]
    assert drive(store, frames, None, *passage, direction="exit").commands == ["open", "close"]
    assert store.booking("b1").status == "requested"  # the cache: the chain has not answered yet
    again = drive(store, frames, None, *passage)
    assert "open" not in again.commands
    last = store.gate_events()[-1][1]
    assert (last.kind, last.reason, last.booking_id) == ("denied", "denied,booking_inactive", "b1")
