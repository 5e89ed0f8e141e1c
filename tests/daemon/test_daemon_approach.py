"""Approach reading (issue #18) with `parkgate run` as a subprocess, the gate emulator on a real pty, a
recorded camera of rendered approach frames and the bundled ONNX models.

- a booked car seen driving up is admitted from its approach track (no burst after the trigger), with the
  track's evidence crop;
- two cars close together in one lane (the first turns off just before the barrier, the second comes on
  behind it): the lane does not take either track, falls back to a fresh read and decides for the car at
  the loop, whichever of the two is booked;
- a car that turned away (its track left the picture, or is stale) decides nothing: the car-less loop
  event is read afresh (no_read);
- a track never opens the gate by itself: a booked car standing in view opens only once the loop fires.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_daemon_lanes import seed_bookings, write_config

from edge.identity import mask_plate
from edge.tools.demo import harness as h
from edge.tools.emulator.launch import EmulatorHandle, running_emulator

BOOKED = h.Vehicle("booked", "AB 123-CD", seed=721)
OTHER_BOOKED = h.Vehicle("booked-2", "ZW 771-QP", seed=224)
WAITING = h.Vehicle("booked-3", "PT 458-RV", seed=516)  # each admitted car is another (anti-passback)
STRANGER = h.Vehicle("stranger", "KX 904-LM", seed=622)
WINDOW_S = 10.0  # long enough for a busy 2-core box, where a frame may take 0.5 s to read
PASS_LINE = re.compile(r"^.*pass lane=entry-1 .*$", re.M)
NO_TRACK = re.compile(r"no approach track \((\w+)\)")


@dataclass
class Lane:
    work: Path
    camera: h.LaneCamera
    emulator: EmulatorHandle
    store: Path
    log: Path

    def quiet(self) -> None:
        """Nobody in view or on the loops (each test ends with a pass, which clears the tracks), and the
        lane idle again (on a busy box an earlier pass may still be ending)."""
        self.camera.show(None)
        self.emulator.command("presence 0")
        self.emulator.command("safety 0")
        h.wait_until(lambda: self.status().get("phase") == "idle", 30, 0.2)
        time.sleep(1.0)

    def status(self) -> dict:
        try:
            lanes = json.loads((self.store.parent / "status.json").read_text())["lanes"]
        except (OSError, ValueError, LookupError):
            return {}
        return dict(lanes[0]) if lanes else {}

    def settle(self, timeout: float = 30.0) -> None:
        """Wait until the lane's approach reader has read what moved (no read in flight and its read count
        unchanged over two status writes): a busy box reads frames slower than the camera gives them."""
        def reader() -> tuple[int, bool]:
            approach = self.status().get("camera", {}).get("approach", {})
            return int(approach.get("reads", -1)), bool(approach.get("reading", True))

        deadline, last, since = time.monotonic() + timeout, reader(), time.monotonic()
        while time.monotonic() < deadline and (last[1] or time.monotonic() - since < 2.2):
            time.sleep(0.2)
            now = reader()
            if now != last:
                last, since = now, time.monotonic()

    def approach(self) -> dict:
        """The camera's approach figures from the status (frames looked at, moving, read; passes asking)."""
        return dict(self.status().get("camera", {}).get("approach", {}))

    def passes(self) -> list[str]:
        return PASS_LINE.findall(self.log.read_text(errors="replace"))

    def no_tracks(self) -> list[str]:
        """Why each burst that asked for an approach track got none (edge.vision.tracks.Why), in order."""
        return NO_TRACK.findall(self.log.read_text(errors="replace"))

    def arrive(self, vehicle: h.Vehicle, expect_open: bool, reason: str) -> h.VisitResult:
        """``vehicle`` (whatever the camera shows now) on the presence loop: through the gate if it opens."""
        return h.play_visit(h.Visit(vehicle, "entry-1", expect_open, reason), self.emulator, self.camera,
                            self.store, arrive="in_view")

    def opens(self) -> int:
        return self.emulator.state()["open_commands"]


@pytest.fixture(scope="module")
def lane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lane]:
    work = tmp_path_factory.mktemp("approach")
    state = work / "state"
    state.mkdir()
    store = state / "parkgate.sqlite"
    seed_bookings(store, BOOKED, OTHER_BOOKED, WAITING)
    camera = h.LaneCamera(work / "camera", "entry-1")
    for vehicle in (BOOKED, OTHER_BOOKED, WAITING, STRANGER):  # rendered before the daemon reads them
        camera.approach_names(vehicle)
        camera.approach_names(vehicle, away=True)
    with running_emulator(work, name="entry-1") as emulator:
        config = write_config(work, [
            {"name": "entry-1", "gate": {"port": str(emulator.link), "baudrate": 115200, "pulse_ms": 2000},
             "camera": {"source": str(camera.manifest), "burst_frames": 3, "approach": True,
                        "track_window_s": WINDOW_S}}])
        daemon = h.start_daemon(config, work / "daemon.log")
        try:
            yield Lane(work, camera, emulator, store, work / "daemon.log")
        finally:
            assert daemon.stop() == 0


def test_a_booked_car_is_admitted_from_its_approach_track(lane: Lane) -> None:
    lane.quiet()
    time.sleep(lane.camera.approach(BOOKED) + h.APPROACH_SETTLE_S)
    lane.settle()
    result = lane.arrive(BOOKED, True, "booking_valid")
    assert result.held, (result.rows, result.error)
    row = result.main_row
    assert row["plate_masked"] == mask_plate(BOOKED.plate) and row["kind"] == "check_in"
    assert "read=approach" in lane.passes()[-1], (lane.no_tracks(), lane.status().get("camera"))
    assert row["evidence_path"] and Path(row["evidence_path"]).is_file()  # the track's best crop


@pytest.mark.parametrize(("first", "second", "opens"), [(BOOKED, STRANGER, False),
                                                         (STRANGER, OTHER_BOOKED, True)])
def test_two_cars_close_together_fall_back_and_decide_for_the_car_at_the_loop(
        lane: Lane, first: h.Vehicle, second: h.Vehicle, opens: bool) -> None:
    """The first car turns off just before the barrier, the second comes on behind it: both plates were
    tracked within the window, so neither track decides; the burst reads the car at the loop."""
    # each frame of the turn three times (0.3 s): a busy box reads the first car more than once too
    turning = [name for name in lane.camera.approach_names(first, away=True)[:8] for _ in range(3)]
    following = lane.camera.approach_names(second)[4:]
    for _ in range(2):  # played again only if the reader read (almost) nothing of it: the box starved it
        lane.quiet()
        before = lane.approach()
        time.sleep(lane.camera.play([*turning, *["empty.jpg"] * 5, *following]) + h.APPROACH_SETTLE_S)
        lane.settle()
        after = lane.approach()
        if after.get("reads", 0) - before.get("reads", 0) >= 6:
            break
    asked = len(lane.no_tracks())
    result = lane.arrive(second, opens, "booking_valid" if opens else "no_booking")
    assert result.held, (result.rows, result.error)
    assert result.main_row["plate_masked"] == mask_plate(second.plate)
    assert "read=burst" in lane.passes()[-1] and lane.no_tracks()[asked:] == ["ambiguous"], (
        lane.no_tracks()[asked:], "approach before the play", before, "after it", after)


@pytest.mark.parametrize(("wait_s", "why"), [(0.0, "left"), (WINDOW_S, "stale")])
def test_a_car_that_turned_away_decides_nothing(lane: Lane, wait_s: float, why: str) -> None:
    lane.quiet()
    time.sleep(lane.camera.approach(BOOKED, away=True) + 0.5)
    lane.settle()
    time.sleep(wait_s)
    asked = len(lane.no_tracks())
    result = lane.arrive(BOOKED, False, "no_read")  # something on the loop, but no plate in view
    assert result.held, (result.rows, result.error)
    assert result.main_row["kind"] == "denied" and result.main_row["plate_masked"] is None
    assert "read=burst" in lane.passes()[-1]
    assert lane.no_tracks()[asked:][:1] == [why]  # the retried burst finds no track at all


def test_a_track_never_opens_the_gate_by_itself(lane: Lane) -> None:
    lane.quiet()
    seq, before = h.last_seq(lane.store), lane.opens()
    time.sleep(lane.camera.approach(WAITING) + 1.0)  # drove up, stands in view; the loop stays clear
    lane.settle()
    assert lane.opens() == before and h.read_rows(lane.store, seq, "entry-1") == []
    result = lane.arrive(WAITING, True, "booking_valid")  # now the loop fires: the fresh track decides
    assert result.held, (result.rows, result.error)
    assert "read=approach" in lane.passes()[-1], (lane.no_tracks(), lane.status().get("camera"))
