"""The approach reader on its own thread, with the bundled models reading rendered approach frames that the
test hands it one by one (no camera, no daemon): the lane's state is the ``idle`` it is given."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import pytest

from edge.daemon.approach import ApproachReader
from edge.lanes.machine import ReadFrom
from edge.tools.demo import harness as h
from edge.vision.camera import Frame
from edge.vision.reader import PlateReader
from edge.vision.tracks import TrackSettings, Why

CAR = h.Vehicle("booked", "AB 123-CD", seed=721)


@dataclass
class Frames:
    """The camera's newest frame, as ``FrameSource.latest`` gives it."""

    latest: Frame | None = None


def drive_up(reader: ApproachReader, frames: Frames, images: list) -> None:
    """Hand the reader the approach frame by frame, each once the reader is done with the one before."""
    for sequence, image in enumerate(images):
        frames.latest = Frame(image, time.monotonic(), sequence)
        assert h.wait_until(lambda n=sequence: reader.gate.frames > n and reader.reads == reader.gate.moving,
                            20.0, 0.01)


@pytest.fixture(scope="module")
def approach(tmp_path_factory: pytest.TempPathFactory) -> list:
    directory = tmp_path_factory.mktemp("approach")
    names = h.approach_frames(CAR, directory, None)
    return [cv2.imread(str(directory / name), cv2.IMREAD_COLOR) for name in names]


def test_the_track_survives_the_lane_leaving_idle_until_the_burst_takes_it(approach: list,
                                                                            tmp_path: Path) -> None:
    """The loop fires: the lane leaves IDLE at once, and its burst asks for the track in another thread a
    moment later (on a busy box, several of the reader's polls later). The reader cleared its tracks when
    the lane left IDLE, so the pass fell back to a burst now and then ('no_track', `make test` 2026-12-02)."""
    frames, lane_idle = Frames(), [True]
    reader = ApproachReader(frames, PlateReader(threads=1), None, TrackSettings(window_s=10.0),
                            lambda: lane_idle[0], "entry-1").start()
    try:
        drive_up(reader, frames, approach)
        assert reader.reads >= 10
        lane_idle[0] = False  # the presence loop fired: the lane is capturing
        time.sleep(0.3)  # the reader polls every 40 ms meanwhile; the burst's thread starts late
        taken = reader.take(1, tmp_path, "pass-1")
        assert taken is not None, reader.taken
        assert taken.read_from is ReadFrom.APPROACH and taken.reads[-1].text == "AB123CD"
        assert reader.take(2, tmp_path, "pass-1-retry") is None  # taking cleared the tracks
        assert reader.taken == {Why.APPROACH: 1, Why.NO_TRACK: 1}
    finally:
        reader.stop()


def test_a_car_seen_before_a_pass_that_did_not_take_it_never_decides_the_next(approach: list,
                                                                              tmp_path: Path) -> None:
    """A manual open (no burst asks for the track): when the lane is idle again, the tracks seen before and
    during that pass are gone."""
    frames, lane_idle = Frames(), [True]
    reader = ApproachReader(frames, PlateReader(threads=1), None, TrackSettings(window_s=10.0),
                            lambda: lane_idle[0], "entry-1").start()
    try:
        drive_up(reader, frames, approach)
        lane_idle[0] = False
        time.sleep(0.2)
        lane_idle[0] = True  # the pass ended without taking the track
        time.sleep(0.2)
        assert reader.take(1, tmp_path, "pass-2") is None
        assert reader.taken == {Why.NO_TRACK: 1}
    finally:
        reader.stop()
