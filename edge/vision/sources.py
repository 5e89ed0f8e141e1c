"""Frames for `parkgate lpr read`: image files, a video file, an RTSP URL or a V4L2 device.

One source at a time, in order: the first frame, or the first `count` frames keeping every `every`-th.
A file ends at its end; a live source (URL, device) whose frames stop coming or do not decode is read
again after a back-off (doubling, capped) and given up after `max_failures` failures in a row, so a dead
stream ends (in an error naming it if it gave no frame at all) instead of spinning. The daemon's capture
thread is `edge.vision.camera.FrameSource`; both open sources through `camera.open_capture`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.vision.camera import open_capture, parse_source

IMAGE_SUFFIXES = frozenset((".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm"))
KINDS = "an image (JPEG/PNG/BMP), a video file, an rtsp:// URL, a V4L2 device (/dev/videoN) or a device index"


class SourceError(ValueError):
    """A source that cannot be opened or decoded; the message names the source."""


@dataclass(frozen=True)
class SourceFrame:
    """A decoded BGR frame and its position in the source (0 for an image)."""

    source: str
    index: int
    image: np.ndarray

    @property
    def label(self) -> str:
        """How output names the frame: the image file, or SOURCE#INDEX for a frame of a video or stream."""
        return self.source if is_image(self.source) else f"{self.source}#{self.index}"


@dataclass(frozen=True)
class Backoff:
    """Waits between failed reads of a live source: retry_s, doubling up to max_retry_s."""

    retry_s: float = 0.1
    max_retry_s: float = 2.0
    max_failures: int = 8
    sleep: Callable[[float], None] = time.sleep

    def delays(self) -> Iterator[float]:
        delay = self.retry_s
        for _ in range(self.max_failures):
            yield delay
            delay = min(delay * 2, self.max_retry_s)


def read_frames(
    source: str,
    count: int = 1,
    every: int = 1,
    backoff: Backoff = Backoff(),
    opener: Callable[[str | int], cv2.VideoCapture] = open_capture,
) -> Iterator[SourceFrame]:
    """The source's frames 0, every, 2 * every, ... until `count` are read (an image gives its one frame);
    SourceError when it cannot be opened or gives no decodable frame."""
    if count < 1 or every < 1:
        raise ValueError(f"frames ({count}) and every ({every}) must be at least 1")
    if is_image(source):
        yield SourceFrame(source, 0, _image(source))
        return
    yield from _video_frames(source, count, every, backoff, opener)


def is_image(source: str) -> bool:
    """An image file by its name (a URL ending in .jpg is a stream: FFmpeg opens it)."""
    return "://" not in source and Path(source).suffix.lower() in IMAGE_SUFFIXES


def is_live(target: str | int) -> bool:
    """Device indexes, device paths and URLs are live (they may recover); a file path is a recording."""
    return isinstance(target, int) or "://" in target or target.startswith("/dev/")


def _image(source: str) -> np.ndarray:
    if not Path(source).is_file():
        raise SourceError(f"{source}: no such image file; expected {KINDS}")
    image = cv2.imread(source, cv2.IMREAD_COLOR)
    if image is None:
        raise SourceError(f"{source}: cannot read image (expected a JPEG/PNG/BMP file)")
    return image


def _video_frames(
    source: str, count: int, every: int, backoff: Backoff, opener: Callable[[str | int], cv2.VideoCapture]
) -> Iterator[SourceFrame]:
    try:
        target = parse_source(source)
    except ValueError as error:
        raise SourceError(f"{error}; expected {KINDS}") from None
    if isinstance(target, str) and "://" not in target and not Path(target).exists():
        raise SourceError(f"{source}: no such file or device; expected {KINDS}")
    capture = opener(target)
    if capture is None or not capture.isOpened():
        raise SourceError(f"{source}: cannot open it as a video or stream; expected {KINDS}")
    try:
        yield from _decoded(source, capture, count, every, backoff if is_live(target) else None)
    finally:
        capture.release()


def _decoded(
    source: str, capture: cv2.VideoCapture, count: int, every: int, backoff: Backoff | None
) -> Iterator[SourceFrame]:
    """Frames of an open capture; `backoff` None (a file): the first failed read is the end."""
    index = kept = 0
    delays = backoff.delays() if backoff else iter(())
    while kept < count:
        wanted = index % every == 0
        ok, image = _grab(capture, decode=wanted)
        if not ok:
            delay = next(delays, None)
            if delay is None or backoff is None:
                break
            backoff.sleep(delay)
            continue
        if image is not None:  # decoded: a wanted frame
            yield SourceFrame(source, index, image)
            kept += 1
        index += 1
        delays = backoff.delays() if backoff else delays
    if kept == 0:
        tries = f" after {backoff.max_failures + 1} tries" if backoff else ""
        raise SourceError(f"{source}: no decodable frame{tries} (an empty, ended or undecodable stream)")


def _grab(capture: cv2.VideoCapture, decode: bool) -> tuple[bool, np.ndarray | None]:
    """Advance one frame (decoding it only when wanted); False when no frame came or it did not decode."""
    if not capture.grab():
        return False, None
    if not decode:
        return True, None
    ok, image = capture.retrieve()
    return (True, image) if ok and image is not None and image.size else (False, None)
