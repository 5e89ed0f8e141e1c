"""Camera capture on its own thread: OpenCV source (video file, V4L2 index, RTSP URL), reconnect with
back-off, and a bounded queue that drops the oldest frame when the consumer falls behind."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Frame:
    """A captured frame with its capture time (monotonic seconds) and sequence number."""

    image: np.ndarray
    captured_at: float
    sequence: int


def parse_source(source: str | int) -> str | int:
    """'0' or 0 -> V4L2 device index 0; anything else (file path, rtsp://...) is passed to OpenCV as is."""
    if isinstance(source, int):
        return source
    text = str(source).strip()
    if not text:
        raise ValueError("camera source is empty; give a device index (0), a video file or an rtsp:// URL")
    return int(text) if text.isdigit() else text


def is_live(target: str | int) -> bool:
    """Device indexes, device paths (/dev/videoN) and URLs are live: they send frames in real time (and
    may recover); a file path is a recording (it ends, or loops)."""
    return isinstance(target, int) or "://" in target or target.startswith("/dev/")


def redact_url(source: str | int) -> str:
    """``source`` as it may be logged or printed: a URL's user and password (``rtsp://user:pass@host/``)
    become ``***``; anything else is returned as is. Everything between ``://`` and the last ``@`` is
    hidden, so a password with an unencoded ``/`` or ``@`` is hidden too (a ``@`` later in the URL hides
    more than the userinfo, never less)."""
    text = str(source)
    scheme, separator, rest = text.partition("://")
    if not separator or "@" not in rest:
        return text
    return f"{scheme}://***@{rest.rpartition('@')[2]}"


def open_capture(source: str | int) -> cv2.VideoCapture:
    return cv2.VideoCapture(parse_source(source))


class FrameSource:
    """Reads frames on a daemon thread into a bounded queue; reopens the source when reads fail.

    `loop=True` restarts a video file at its end (recorded sources in demos); a live source that ends
    or fails is reopened after `retry_s`, doubling up to `max_retry_s`. A source that opens but gives
    no decodable frame (a zero-byte frame in a recording, a stream of garbage) is reopened with the
    same back-off, looped or not: it must not spin a core. ``last_frame_at`` (monotonic seconds, None
    before the first frame) and ``read_failures`` tell the camera's health (edge.daemon.camera).
    """

    def __init__(
        self,
        source: str | int,
        queue_size: int = 4,
        retry_s: float = 0.5,
        max_retry_s: float = 10.0,
        loop: bool = False,
        fps_limit: float | None = None,
        opener: Callable[[str | int], cv2.VideoCapture] = open_capture,
    ) -> None:
        self.source = parse_source(source)
        self.frames: queue.Queue[Frame] = queue.Queue(maxsize=max(1, queue_size))
        self.retry_s, self.max_retry_s, self.loop = retry_s, max_retry_s, loop
        self.fps_limit = fps_limit
        self.opener = opener
        self.dropped = 0
        self.reconnects = 0
        self.read_failures = 0  # opens or reads that gave no decodable frame
        self.started_at = time.monotonic()
        self.last_frame_at: float | None = None
        self.latest: Frame | None = None  # the newest frame, for the live view (edge.daemon.liveview)
        self._stop = threading.Event()
        self.finished = threading.Event()
        self._thread = threading.Thread(target=self._run, name="frame-source", daemon=True)
        self._sequence = 0

    def start(self) -> FrameSource:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def __enter__(self) -> FrameSource:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def get(self, timeout: float | None = None) -> Frame | None:
        """Next frame, or None if none arrived within `timeout`."""
        try:
            return self.frames.get(timeout=timeout)
        except queue.Empty:
            return None

    @property
    def frames_read(self) -> int:
        """Frames captured since the start (the camera's frame rate is its rate of change)."""
        return self._sequence

    @property
    def is_live(self) -> bool:
        """Device indexes, device paths and URLs are live (reconnect); a file path is a recording (ends or
        loops)."""
        return is_live(self.source)

    def _run(self) -> None:
        delay = self.retry_s
        while not self._stop.is_set():
            capture = self.opener(self.source)
            if capture is not None and capture.isOpened():
                delivered = self._read_until_failure(capture)
                capture.release()
                if delivered:
                    delay = self.retry_s
                if self._stop.is_set() or (self.loop and not self.is_live and delivered):
                    continue
                if not self.is_live and not self.loop:
                    self.finished.set()
                    return
                if not delivered:
                    self.read_failures += 1
                    log.debug("camera %s gave no decodable frame; retrying in %.1fs", redact_url(self.source),
                              delay)
            else:
                self.read_failures += 1
                log.warning("camera %s could not be opened; retrying in %.1fs", redact_url(self.source),
                            delay)
            self.reconnects += 1
            self._stop.wait(delay)
            delay = min(delay * 2, self.max_retry_s)

    def _read_until_failure(self, capture: cv2.VideoCapture) -> int:
        """Frames delivered before the capture failed or ended."""
        return self._read_live(capture) if self.is_live else self._read_recording(capture)

    def _read_live(self, capture: cv2.VideoCapture) -> int:
        """A live source is never left waiting: FFmpeg and the socket buffer every frame not read, so a
        reader that slept 1/fps between reads got frames older each time (13.6 s behind after 24 s, with
        ``captured_at`` saying fresh). Every frame is grabbed as it comes; only those due under
        ``fps_limit`` are decoded into images (``retrieve``) and delivered."""
        interval = 1.0 / self.fps_limit if self.fps_limit else 0.0
        due, delivered = time.monotonic(), 0
        while not self._stop.is_set():
            if not capture.grab():
                return delivered
            now = time.monotonic()
            if now < due:
                continue
            ok, image = capture.retrieve()
            if not ok or image is None or not image.size:
                return delivered
            self._deliver(image)
            delivered += 1
            due = max(due + interval, now)  # the average rate is fps_limit; a stall does not bank frames
        return delivered

    def _read_recording(self, capture: cv2.VideoCapture) -> int:
        """A file is read at most ``fps_limit`` frames a second (it would otherwise play as fast as it
        decodes); nothing buffers behind it, so waiting between reads delays no frame."""
        interval = 1.0 / self.fps_limit if self.fps_limit else 0.0
        delivered = 0
        while not self._stop.is_set():
            ok, image = capture.read()
            if not ok or image is None or not image.size:
                return delivered
            self._deliver(image)
            delivered += 1
            if interval:
                self._stop.wait(interval)
        return delivered

    def _deliver(self, image: np.ndarray) -> None:
        self.last_frame_at = time.monotonic()
        self.latest = Frame(image, self.last_frame_at, self._sequence)
        self._put(self.latest)
        self._sequence += 1

    def _put(self, frame: Frame) -> None:
        while True:
            try:
                self.frames.put_nowait(frame)
                return
            except queue.Full:
                try:
                    self.frames.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass
