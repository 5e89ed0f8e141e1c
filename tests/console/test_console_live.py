"""The live view's daemon side (edge.daemon.liveview) with a real frame source playing a recorded camera:
frames are encoded only while a console watches, once per new frame, downscaled, private; and the MJPEG
framing the console streams them in."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import cv2
import numpy as np

from edge.console.app import BOUNDARY, mjpeg_part
from edge.daemon import liveview
from edge.daemon.camera import open_frame_source
from edge.tools.demo import harness as h


def test_frames_are_written_only_while_watched_once_each_and_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    liveview.live_dir(state).mkdir(parents=True, mode=0o700)
    camera = h.LaneCamera(tmp_path / "camera", "entry-1")
    source = open_frame_source(str(camera.manifest), 10)
    try:
        assert h.wait_until(lambda: source.latest is not None, 10)
        sent: dict[str, int] = {}
        lanes = [("entry-1", source)]
        unwatched = liveview.publish_once(state, lanes, sent)
        watch = liveview.watch_path(state, "entry-1")
        watch.touch()
        first = liveview.publish_once(state, lanes, sent)
        old = time.time() - liveview.WATCH_FRESH_S - 1
        os.utime(watch, (old, old))
        time.sleep(0.3)  # new frames arrive (10 fps), but nobody watches any more
        stale_watch = liveview.publish_once(state, lanes, sent)
        source.stop()  # no new frame from here on
        watch.touch()
        liveview.publish_once(state, lanes, sent)
        again = liveview.publish_once(state, lanes, sent)  # the same frame is not encoded twice
    finally:
        source.stop()
    frame = liveview.frame_path(state, "entry-1")
    image = cv2.imdecode(np.frombuffer(frame.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    assert (unwatched, first, stale_watch, again) == (0, 1, 0, 0)
    assert image.shape[1] == liveview.MAX_WIDTH and image.shape[0] == h.FRAME_SIZE[1] * 640 // h.FRAME_SIZE[0]
    assert stat.S_IMODE(frame.stat().st_mode) == 0o600
    assert not list(liveview.live_dir(state).glob("*.tmp"))


def test_an_mjpeg_part_frames_one_jpeg() -> None:
    part = mjpeg_part(b"\xff\xd8jpeg\xff\xd9")
    assert part == (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: 8\r\n\r\n".encode()
                    + b"\xff\xd8jpeg\xff\xd9\r\n")
