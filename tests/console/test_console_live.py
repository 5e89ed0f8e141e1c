"""The live view's daemon side (edge.daemon.liveview) with a real frame source playing a recorded camera
and the bundled detector (onnxruntime): frames are encoded only while a console watches, once per new
frame, downscaled, private; the detector's boxes come with their width against the recommended minimum,
marked inside or outside the ROI, and are skipped while the lane reads a vehicle; and the MJPEG framing
the console streams them in."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from edge.console.app import BOUNDARY, mjpeg_part
from edge.daemon import liveview
from edge.daemon.camera import open_frame_source
from edge.tools.demo import harness as h
from edge.vision import bundle
from edge.vision.detector import Detection
from edge.vision.reader import PlateDetector
from edge.vision.roi import Roi
from edge.vision.types import MIN_PLATE_WIDTH_PX

VISITOR = h.Vehicle("visitor", "KX 904-LM", seed=622)


def test_frames_are_written_only_while_watched_once_each_and_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    liveview.live_dir(state).mkdir(parents=True, mode=0o700)
    camera = h.LaneCamera(tmp_path / "camera", "entry-1")
    source = open_frame_source(str(camera.manifest), 10)
    try:
        assert h.wait_until(lambda: source.latest is not None, 10)
        view = liveview.LiveView(state, [liveview.LiveLane("entry-1", source)], None)
        unwatched = view.publish_once()
        watch = liveview.watch_path(state, "entry-1")
        watch.touch()
        first = view.publish_once()
        old = time.time() - liveview.WATCH_FRESH_S - 1
        os.utime(watch, (old, old))
        time.sleep(0.3)  # new frames arrive (10 fps), but nobody watches any more
        stale_watch = view.publish_once()
        source.stop()  # no new frame from here on
        watch.touch()
        view.publish_once()
        again = view.publish_once()  # the same frame is not encoded twice
    finally:
        source.stop()
    frame = liveview.frame_path(state, "entry-1")
    image = cv2.imdecode(np.frombuffer(frame.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    info = json.loads(liveview.boxes_path(state, "entry-1").read_text())
    assert (unwatched, first, stale_watch, again) == (0, 1, 0, 0)
    assert image.shape[1] == liveview.MAX_WIDTH and image.shape[0] == h.FRAME_SIZE[1] * 640 // h.FRAME_SIZE[0]
    assert stat.S_IMODE(frame.stat().st_mode) == 0o600
    assert stat.S_IMODE(liveview.boxes_path(state, "entry-1").stat().st_mode) == 0o600
    assert info["boxes"] == [] and info["note"] == "detector off: no detector"
    assert info["frame"] == list(h.FRAME_SIZE) and info["min_width_px"] == MIN_PLATE_WIDTH_PX
    assert not list(liveview.live_dir(state).glob("*.tmp"))


def test_a_watch_touched_before_the_clock_stepped_back_is_not_fresh_for_days(tmp_path: Path) -> None:
    """The console touched the watch file, then NTP stepped the clock back 3 days and the console went away:
    the touch is "in the future"; it counted as fresh (the detector ran on the lane's frames for 3 days)."""
    watch = tmp_path / "entry-1.watch"
    watch.touch()
    now = time.time()
    os.utime(watch, (now, now))
    assert liveview.watched(watch, now + 1)
    assert not liveview.watched(watch, now + 60)
    assert not liveview.watched(watch, now + 60 - 3 * 86_400)  # the clock stepped back 3 days


def test_the_detector_boxes_the_plate_with_its_width_and_pauses_while_the_lane_reads(tmp_path: Path) -> None:
    state = tmp_path / "state"
    liveview.live_dir(state).mkdir(parents=True, mode=0o700)
    camera = h.LaneCamera(tmp_path / "camera", "entry-1")
    camera.show(VISITOR)
    source = open_frame_source(str(camera.manifest), 10)
    busy = {"entry-1": False}
    loads: list[int] = []

    def load() -> liveview.Detect:
        loads.append(1)
        return PlateDetector(bundle.DEFAULT_DETECTOR_PATH, threads=1).detect

    whole = liveview.LiveLane("entry-1", source)
    nowhere = liveview.LiveLane("entry-1", source, Roi.parse("0,0;0.1,0;0.1,0.1"))  # the plate is outside
    watch = liveview.watch_path(state, "entry-1")
    infos = []
    try:
        assert h.wait_until(lambda: source.latest is not None, 10)
        for lane, lane_busy in ((whole, False), (nowhere, False), (whole, True)):
            view = liveview.LiveView(state, [lane], load, lambda name: busy[name])
            busy["entry-1"] = lane_busy
            watch.touch()
            assert view.publish_once() == 1
            infos.append(json.loads(liveview.boxes_path(state, "entry-1").read_text()))
        attempts: list[int] = []

        def load_missing() -> liveview.Detect:
            attempts.append(1)
            return PlateDetector(tmp_path / "none.onnx").detect

        missing = liveview.LiveView(state, [whole], load_missing)
        busy["entry-1"] = False
        assert missing.publish_once() == 1  # frames still flow without a detector
        # A new camera frame may arrive between the two calls (10 fps), so count the loads, not the frames.
        missing.sent.clear()
        assert missing.publish_once() == 1 and attempts == [1]  # the missing model is tried once only
        no_model = json.loads(liveview.boxes_path(state, "entry-1").read_text())
    finally:
        source.stop()
    seen, outside, paused = infos
    assert len(seen["boxes"]) >= 1 and seen["note"] == "", seen
    plate = seen["boxes"][0]
    assert plate["in_roi"] and plate["score"] >= 0.3
    assert plate["width_px"] == round(plate["x2"] - plate["x1"]) and 20 < plate["width_px"] < h.FRAME_SIZE[0]
    assert outside["boxes"] and not any(box["in_roi"] for box in outside["boxes"])
    assert paused["boxes"] == [] and paused["note"] == "lane busy reading a vehicle: boxes paused"
    assert len(loads) == 2  # one detector per view, loaded at its first watched frame, not when busy
    assert no_model["boxes"] == [] and "detector off: ONNX model not found" in no_model["note"]


def test_stopping_the_live_view_does_not_wait_for_a_hung_detector(tmp_path: Path) -> None:
    """The daemon's shutdown cancels the live loop: a detector wedged in ONNX (a watched lane) must not hold
    it (before: the loop's executor joined the frame, blocking the event loop until the call returned)."""
    state = tmp_path / "state"
    camera = h.LaneCamera(tmp_path / "camera", "entry-1")
    source = open_frame_source(str(camera.manifest), 10)
    detecting, released = threading.Event(), threading.Event()

    def hung(image: np.ndarray) -> list[Detection]:
        detecting.set()
        released.wait(3)
        return []

    async def scenario() -> float:
        view = liveview.LiveView(state, [liveview.LiveLane("entry-1", source)], lambda: hung)
        task = asyncio.create_task(liveview.live_loop(view, asyncio.Event()))
        await asyncio.to_thread(detecting.wait, 10)
        started = time.monotonic()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return time.monotonic() - started

    try:
        assert h.wait_until(lambda: source.latest is not None, 10)
        liveview.live_dir(state).mkdir(parents=True, mode=0o700)
        liveview.watch_path(state, "entry-1").touch()
        took = asyncio.run(scenario())
    finally:
        released.set()
        source.stop()
    assert detecting.is_set()
    assert took < 0.5, took


def test_live_boxes_are_judged_inside_the_roi_by_their_centre() -> None:
    roi = Roi.parse("0,0.5;1,0.5;1,1;0,1")
    found = [Detection(100, 300, 190, 330, 0.91), Detection(10, 10, 60, 30, 0.5)]
    boxes = liveview.live_boxes(found, roi, 960, 540)
    assert [(b.width_px, b.in_roi, b.score) for b in boxes] == [(90, True, 0.91), (50, False, 0.5)]
    assert all(b.in_roi for b in liveview.live_boxes(found, None, 960, 540))
    image = np.zeros((540, 960, 3), np.uint8)
    small, scale = liveview.downscaled(image)
    liveview.draw(small, scale, boxes, roi, 960, 540)
    assert small.shape[1] == liveview.MAX_WIDTH and small.any()  # the boxes, labels and ROI are drawn


def test_the_live_worker_thread_runs_at_a_lower_priority() -> None:
    seen: list[int] = []
    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def run() -> None:
        liveview.lower_priority(5)
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == [min(19, before + 5)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before  # only that thread


def test_an_mjpeg_part_frames_one_jpeg() -> None:
    part = mjpeg_part(b"\xff\xd8jpeg\xff\xd9")
    assert part == (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: 8\r\n\r\n".encode()
                    + b"\xff\xd8jpeg\xff\xd9\r\n")
