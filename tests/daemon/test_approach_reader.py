"""The approach reader on its own thread, with the bundled models reading rendered approach frames that the
test hands it one by one (no camera, no daemon): the lane's state is the ``idle`` it is given."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
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
FROZEN_S = 0.8  # longer than FRESH_READ_S and TrackSettings.max_frame_age_s (0.5 s)


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


@contextmanager
def live_camera(frames: Frames, period_s: float = 0.1) -> Iterator[None]:
    """A live camera looking at a scene that no longer moves: its newest frame again, as a new frame
    (next sequence number, captured now) every ``period_s``, as a 10 fps camera sends them."""
    stop = threading.Event()

    def send() -> None:
        while not stop.wait(period_s):
            last = frames.latest
            assert last is not None
            frames.latest = Frame(last.image, time.monotonic(), last.sequence + 1)

    sender = threading.Thread(target=send, name="live-camera", daemon=True)
    sender.start()
    try:
        yield
    finally:
        stop.set()
        sender.join(5.0)


def started_reader(frames: Frames, lane_idle: list[bool]) -> ApproachReader:
    """An approach reader on ``frames`` (tracks kept 10 s), reading while ``lane_idle[0]``."""
    return ApproachReader(frames, PlateReader(threads=1), None, TrackSettings(window_s=10.0),
                          lambda: lane_idle[0], "entry-1").start()


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
    reader = started_reader(frames, lane_idle)
    try:
        drive_up(reader, frames, approach)
        assert reader.reads >= 10
        with live_camera(frames):
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
    reader = started_reader(frames, lane_idle)
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


@pytest.mark.parametrize("frames_after", [0, 1])
def test_a_frozen_camera_never_lets_an_old_track_decide(approach: list, tmp_path: Path,
                                                        frames_after: int) -> None:
    """The camera froze after the car's last read (an RTSP stall), right away or after one more frame: its
    newest frame is no picture of the loop now, so neither an unchanged scene nor one confirming read of it
    lets the track decide; the lane falls back to a burst (which refuses the car without fresh frames).
    Before the fix the frozen frame confirmed the track (s13 review, finding 2)."""
    frames, lane_idle = Frames(), [True]
    reader = started_reader(frames, lane_idle)
    try:
        drive_up(reader, frames, approach)
        assert reader.reads >= 10
        last = frames.latest
        assert last is not None
        for sequence in range(last.sequence + 1, last.sequence + 1 + frames_after):
            frames.latest = Frame(last.image, time.monotonic(), sequence)
        time.sleep(FROZEN_S)  # no frame since: the camera froze
        lane_idle[0] = False
        assert reader.take(1, tmp_path, "pass-frozen") is None
        assert reader.taken == {Why.UNCONFIRMED: 1}
    finally:
        reader.stop()


def test_a_live_camera_on_a_car_stopped_in_view_lets_its_track_decide(approach: list, tmp_path: Path) -> None:
    """The same wait with the camera still sending frames of the stopped car: its track decides."""
    frames, lane_idle = Frames(), [True]
    reader = started_reader(frames, lane_idle)
    try:
        drive_up(reader, frames, approach)
        with live_camera(frames):
            time.sleep(FROZEN_S)
            lane_idle[0] = False
            taken = reader.take(1, tmp_path, "pass-live")
        assert taken is not None, reader.taken
        assert taken.read_from is ReadFrom.APPROACH and taken.reads[-1].text == "AB123CD"
    finally:
        reader.stop()


def test_a_trigger_right_after_a_read_waits_for_the_cameras_next_frame(approach: list,
                                                                       tmp_path: Path) -> None:
    """The car reaches the loop just after its frame was read, before the camera's next frame: the
    confirmation waits for that frame (CONFIRM_WAIT_S) instead of falling back to a burst (`make chaos`,
    2026-12-03: 168 passes decided from a track against 308)."""
    frames, lane_idle = Frames(), [True]
    reader = started_reader(frames, lane_idle)
    try:
        drive_up(reader, frames, [approach[0], approach[-1]])
        last = frames.latest
        assert reader.reads == 1 and last is not None
        timer = threading.Timer(0.15, lambda: setattr(frames, "latest", Frame(last.image, time.monotonic(),
                                                                                last.sequence + 1)))
        timer.start()
        lane_idle[0] = False
        taken = reader.take(1, tmp_path, "pass-next-frame")
        timer.join()
        assert taken is not None and taken.read_from is ReadFrom.APPROACH, reader.taken
    finally:
        reader.stop()


@pytest.mark.parametrize("live", [False, True])
def test_a_one_read_track_is_confirmed_only_by_a_new_frame(approach: list, tmp_path: Path,
                                                           live: bool) -> None:
    """A track of one read needs one more read of the frame in view now: a new frame of the camera
    confirms it, the frame it was read in (a frozen camera) does not (it would vote twice)."""
    frames, lane_idle = Frames(), [True]
    reader = started_reader(frames, lane_idle)
    try:
        drive_up(reader, frames, [approach[0], approach[-1]])  # the first frame is the motion reference
        assert reader.reads == 1
        with live_camera(frames) if live else nullcontext():
            time.sleep(0.3)
            lane_idle[0] = False
            taken = reader.take(1, tmp_path, "pass-one-read")
        if live:
            assert taken is not None and taken.read_from is ReadFrom.APPROACH, reader.taken
            assert [r.text for r in taken.reads] == ["AB123CD", "AB123CD"]
        else:
            assert taken is None and reader.taken == {Why.UNCONFIRMED: 1}
    finally:
        reader.stop()
