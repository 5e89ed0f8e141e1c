"""The daemon's frame source on a live RTSP stream (GStreamer's RTSP server on loopback, see
tests/vision/rtsp_server.py): a throttled source (``fps_limit``, as ``open_frame_source`` opens a lane's
camera) must deliver the frame the camera sends now, not one that waited in FFmpeg's buffer.

Each streamed frame shows its number as black/white blocks; an unthrottled source on the same stream
tells which frame the camera sends now. Before the fix the throttled source slept between reads and fell
0.6 s further behind every second (2.4 s after 4 s, 13.6 s after 24 s) while ``captured_at`` said fresh.
"""

import time
from collections.abc import Iterator

import cv2
import numpy as np
import pytest
from test_lpr_read_rtsp import start_camera

from edge.daemon.camera import open_frame_source
from edge.vision.camera import Frame, FrameSource

BITS, BLOCK, HEIGHT = 8, 32, 64  # frame numbers 0..255 as 8 blocks of 32x64 px
LOOP = 250  # frames in the server's loop: 10 s at 25 fps, far more than any lag measured here
FPS, LIMIT = 25, 10  # the camera's rate, and the daemon's default lanes.camera.fps
WATCH_S = 4.0
MAX_LAG_S = 1.0  # generous: a source that keeps up lags by about one throttle interval (0.1 s)


def numbered(index: int) -> np.ndarray:
    image = np.zeros((HEIGHT, BITS * BLOCK, 3), np.uint8)
    for bit in range(BITS):
        if index >> bit & 1:
            image[:, bit * BLOCK : (bit + 1) * BLOCK] = 255
    return image


def number_of(frame: Frame) -> int:
    centre = frame.image[HEIGHT // 2]
    return sum(1 << bit for bit in range(BITS) if centre[bit * BLOCK + BLOCK // 2].mean() > 128)


def behind(now: Frame, late: Frame) -> float:
    """Seconds of stream between the frame the camera sends now and a late frame (loop-aware)."""
    frames = (number_of(now) - number_of(late) + LOOP // 2) % LOOP - LOOP // 2
    return frames / FPS


@pytest.fixture(scope="module")
def numbered_camera(tmp_path_factory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("numbered")
    for index in range(LOOP):
        cv2.imwrite(str(folder / f"frame-{index:04d}.png"), numbered(index))
    server, url = start_camera(folder)
    try:
        yield url
    finally:
        server.stop()


def wait_for_frames(*sources: FrameSource, timeout: float = 20.0) -> None:
    for source in sources:
        assert source.get(timeout) is not None, f"no frame from {source.source} within {timeout} s"


def test_a_throttled_live_camera_delivers_the_frame_in_view_now(numbered_camera: str) -> None:
    reference = FrameSource(numbered_camera, queue_size=2).start()
    throttled = open_frame_source(numbered_camera, LIMIT)
    try:
        wait_for_frames(reference, throttled)
        started, delivered = throttled.last_frame_at, throttled.frames_read
        assert started is not None
        time.sleep(WATCH_S)
        now, latest = reference.latest, throttled.latest
        assert now is not None and latest is not None
        lag = behind(now, latest)
        assert lag < MAX_LAG_S, f"the throttled source is {lag:.1f} s behind the camera after {WATCH_S} s"
        while throttled.get(timeout=0) is not None:  # what a lane's burst does: drop queued frames ...
            pass
        fresh, now = throttled.get(timeout=2.5), reference.latest  # ... and read the next one
        assert fresh is not None and now is not None
        assert behind(now, fresh) < MAX_LAG_S, f"a burst's frame is {behind(now, fresh):.1f} s old"
        elapsed = time.monotonic() - started
        assert throttled.frames_read - delivered <= LIMIT * elapsed + 2  # still throttled to fps_limit
    finally:
        reference.stop()
        throttled.stop()
