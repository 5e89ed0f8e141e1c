"""The lanes' latest frames for the console's live view (issue #19), never in a lane's way.

While a console watches a lane (it touches ``<state_dir>/live/<lane>.watch`` at least every few
seconds), the daemon writes that lane's newest camera frame, downscaled, as ``<lane>.jpg`` next to it
(0600 in a 0700 directory: frames show plates) at LIVE_FPS, from a worker thread. Nobody watching:
nothing is encoded. The frame is the one the camera thread already holds (``FrameSource.latest``); the
lane's own queue is never read here, so a slow console or browser only ever misses frames."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from edge.vision.camera import FrameSource

log = logging.getLogger(__name__)
LIVE_DIR = "live"
LIVE_FPS = 2.0
WATCH_FRESH_S = 5.0  # a watch file touched longer ago than this: nobody watches
MAX_WIDTH = 640
JPEG_QUALITY = 70


def live_dir(state_dir: Path) -> Path:
    return state_dir / LIVE_DIR


def frame_path(state_dir: Path, lane: str) -> Path:
    return live_dir(state_dir) / f"{lane}.jpg"


def watch_path(state_dir: Path, lane: str) -> Path:
    return live_dir(state_dir) / f"{lane}.watch"


def watched(path: Path, now: float) -> bool:
    try:
        return now - path.stat().st_mtime <= WATCH_FRESH_S
    except OSError:
        return False


def encode(image: np.ndarray) -> bytes | None:
    """The frame as JPEG, at most MAX_WIDTH pixels wide."""
    height, width = image.shape[:2]
    if width > MAX_WIDTH:
        size = (MAX_WIDTH, max(1, height * MAX_WIDTH // width))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return data.tobytes() if ok else None


def write_private(path: Path, data: bytes) -> None:
    """Atomically: a reader sees the old frame or the new one, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)


def publish_once(state_dir: Path, lanes: Sequence[tuple[str, FrameSource]], sent: dict[str, int]) -> int:
    """Write the new frame of every watched lane; how many were written. ``sent``: lane -> the sequence
    number last written (updated)."""
    now, written = time.time(), 0
    for lane, source in lanes:
        frame = source.latest
        if frame is None or sent.get(lane) == frame.sequence or not watched(watch_path(state_dir, lane), now):
            continue
        data = encode(frame.image)
        if data is not None:
            write_private(frame_path(state_dir, lane), data)
            sent[lane] = frame.sequence
            written += 1
    return written


async def live_loop(state_dir: Path, lanes: Sequence[tuple[str, FrameSource]], stop: asyncio.Event) -> None:
    """Until ``stop``: publish_once at LIVE_FPS, off the event loop; failures are logged, never raised."""
    directory = live_dir(state_dir)
    try:
        directory.mkdir(mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)
    except OSError as exc:
        log.warning("live view off: cannot make %s (%s)", directory, exc)
        return
    sent: dict[str, int] = {}
    while not stop.is_set():
        try:
            await asyncio.to_thread(publish_once, state_dir, lanes, sent)
        except Exception:  # noqa: BLE001 - the live view must never reach the gates
            log.exception("live view frame failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0 / LIVE_FPS)
