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

from edge.vision.camera import is_live, open_capture, parse_source, redact_url
from edge.vision.imageheader import image_size

MAX_IMAGE_PIXELS = 40_000_000  # 40 MP: a 7680x4320 (8K) frame is 33 MP; decoded, 120 MB of BGR bytes
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
        """How output names the frame: the image file, or SOURCE#INDEX for a frame of a video or stream (a
        URL's user and password hidden)."""
        return self.source if is_image(self.source) else f"{redact_url(self.source)}#{self.index}"


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
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> Iterator[SourceFrame]:
    """The source's frames 0, every, 2 * every, ... until `count` are read (an image gives its one frame);
    SourceError when it cannot be opened, gives no decodable frame or its frames have more than
    `max_pixels` pixels."""
    if count < 1 or every < 1:
        raise ValueError(f"frames ({count}) and every ({every}) must be at least 1")
    if is_image(source):
        yield SourceFrame(source, 0, load_image(source, max_pixels))
        return
    yield from _video_frames(source, count, every, backoff, opener, max_pixels)


def is_image(source: str) -> bool:
    """An image file by its name (a URL ending in .jpg is a stream: FFmpeg opens it)."""
    return "://" not in source and Path(source).suffix.lower() in IMAGE_SUFFIXES


def load_image(source: str | Path, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """The image file decoded as BGR. Its size is read from its header first: SourceError naming the file
    when it has more than `max_pixels` pixels (decoding would take gigabytes), or its size cannot be
    read, or it does not decode."""
    if not Path(source).is_file():
        raise SourceError(f"{source}: no such image file; expected {KINDS}")
    try:
        size = image_size(source)
    except OSError as error:
        raise SourceError(f"{source}: cannot read it: {error.strerror or error}") from None
    image = None if size is None else _decode(str(source), size, max_pixels)
    if image is None:
        raise SourceError(f"{source}: cannot read image (expected a JPEG/PNG/BMP file)")
    return image


def _decode(source: str, size: tuple[int, int], max_pixels: int) -> np.ndarray | None:
    check_pixels(source, *size, max_pixels)
    return cv2.imread(source, cv2.IMREAD_COLOR)


def check_pixels(source: str, width: int, height: int, max_pixels: int = MAX_IMAGE_PIXELS) -> None:
    """SourceError naming `source` when a `width` x `height` frame has more than `max_pixels` pixels."""
    if width * height > max_pixels:
        raise SourceError(f"{redact_url(source)}: {width}x{height} = {width * height:,} pixels is more than "
                          f"the {max_pixels:,} allowed; scale it down first")


def _video_frames(
    source: str, count: int, every: int, backoff: Backoff, opener: Callable[[str | int], cv2.VideoCapture],
    max_pixels: int,
) -> Iterator[SourceFrame]:
    try:
        target = parse_source(source)
    except ValueError as error:
        raise SourceError(f"{error}; expected {KINDS}") from None
    if isinstance(target, str) and "://" not in target and not Path(target).exists():
        raise SourceError(f"{source}: no such file or device; expected {KINDS}")
    capture = opener(target)
    if capture is None or not capture.isOpened():
        raise SourceError(f"{redact_url(source)}: cannot open it as a video or stream; expected {KINDS}")
    try:
        width, height = (int(capture.get(p)) for p in (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT))
        check_pixels(source, width, height, max_pixels)  # 0x0 when the backend does not say
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
        raise SourceError(f"{redact_url(source)}: no decodable frame{tries} (an empty, ended or undecodable "
                          "stream)")


def _grab(capture: cv2.VideoCapture, decode: bool) -> tuple[bool, np.ndarray | None]:
    """Advance one frame (decoding it only when wanted); False when no frame came or it did not decode."""
    if not capture.grab():
        return False, None
    if not decode:
        return True, None
    ok, image = capture.retrieve()
    return (True, image) if ok and image is not None and image.size else (False, None)
