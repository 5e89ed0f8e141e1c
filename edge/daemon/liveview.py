"""The lanes' latest frames for the console's live view (issue #19), never in a lane's way.

While a console watches a lane (it touches ``<state_dir>/live/<lane>.watch`` at least every few
seconds), the daemon writes that lane's newest camera frame, downscaled, as ``<lane>.jpg`` next to it
(0600 in a 0700 directory: frames show plates) at LIVE_FPS, from a worker thread of its own at a lower
CPU priority (nice +LIVE_NICE). Nobody watching: nothing is encoded. The frame is the one the camera
thread already holds (``FrameSource.latest``); the lane's own queue is never read here, so a slow
console or browser only ever misses frames.

On each watched frame the worker also runs the plate detector (not the OCR; its own one-thread
onnxruntime session, loaded at the first watched frame, so its work runs on this low-priority thread)
and draws each box with its width in frame pixels against MIN_PLATE_WIDTH_PX, and the ROI the lane runs
with; ``<lane>.json`` beside the frame lists the same boxes for the console's page. While the lane is
capturing, deciding or opening the detector is skipped (the lane's own reader needs the cores)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.vision.camera import FrameSource
from edge.vision.detector import Detection, resize
from edge.vision.roi import Roi
from edge.vision.types import MIN_PLATE_WIDTH_PX

log = logging.getLogger(__name__)
LIVE_DIR = "live"
LIVE_FPS = 2.0
WATCH_FRESH_S = 5.0  # a watch file touched longer ago than this: nobody watches
MAX_WIDTH = 640
JPEG_QUALITY = 70
LIVE_NICE = 19  # added to the worker thread's nice value (capped at 19): the lanes' threads come first
BUSY_PHASES = frozenset({"capturing", "deciding", "opening"})  # the lane reads plates: no live detection
# BGR colours drawn on the frame: the ROI, a plate wide enough, a narrow one, one outside the ROI
ROI_COLOUR, WIDE_COLOUR = (0, 212, 255), (0, 200, 0)
NARROW_COLOUR, OUTSIDE_COLOUR = (0, 140, 255), (160, 160, 160)

Detect = Callable[[np.ndarray], list[Detection]]


@dataclass(frozen=True)
class LiveLane:
    """A lane as the live view sees it: its name, its camera's frames, the ROI the daemon runs with."""

    name: str
    source: FrameSource
    roi: Roi | None = None


@dataclass(frozen=True)
class LiveBox:
    """A detector box on a live frame, in frame pixels; ``width_px`` is what an installer aims for."""

    x1: float
    y1: float
    x2: float
    y2: float
    score: float
    in_roi: bool
    width_px: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "width_px", round(self.x2 - self.x1))


def live_dir(state_dir: Path) -> Path:
    return state_dir / LIVE_DIR


def frame_path(state_dir: Path, lane: str) -> Path:
    return live_dir(state_dir) / f"{lane}.jpg"


def boxes_path(state_dir: Path, lane: str) -> Path:
    return live_dir(state_dir) / f"{lane}.json"


def watch_path(state_dir: Path, lane: str) -> Path:
    return live_dir(state_dir) / f"{lane}.watch"


def fresh(at: float, now: float) -> bool:
    """Whether something dated ``at`` (wall clock, s; maybe rounded to the ms) is at most ``WATCH_FRESH_S``
    old at ``now``. One dated after ``now`` is from before a step back of the clock (days old, maybe): not
    fresh (a live console touches its watch again at once, a running daemon writes its boxes again)."""
    return -0.001 <= now - at <= WATCH_FRESH_S


def watched(path: Path, now: float) -> bool:
    """Whether the console touched ``path`` lately (:func:`fresh`)."""
    try:
        return fresh(path.stat().st_mtime, now)
    except OSError:
        return False


def live_boxes(found: Sequence[Detection], roi: Roi | None, width: int, height: int) -> list[LiveBox]:
    """The detector's boxes of a ``width`` x ``height`` frame, each marked inside the ROI or not (its
    centre, as the lane's reader judges it)."""
    return [LiveBox(d.x1, d.y1, d.x2, d.y2, round(d.score, 3),
                    roi is None or roi.contains((d.x1 + d.x2) / 2, (d.y1 + d.y2) / 2, width, height))
            for d in found]


def frame_info(lane: str, sequence: int, width: int, height: int, boxes: Sequence[LiveBox], note: str
               ) -> dict[str, Any]:
    """What ``<lane>.json`` says about one live frame: its size, the boxes (frame pixels), the minimum
    width recommended for reading, and why there are no boxes when the detector did not run."""
    return {"lane": lane, "sequence": sequence, "frame": [width, height], "min_width_px": MIN_PLATE_WIDTH_PX,
            "boxes": [asdict(box) for box in boxes], "note": note, "at": round(time.time(), 3)}


def downscaled(image: np.ndarray) -> tuple[np.ndarray, float]:
    """The frame at most MAX_WIDTH pixels wide, and the scale applied."""
    height, width = image.shape[:2]
    if width <= MAX_WIDTH:
        return image, 1.0
    size = (MAX_WIDTH, max(1, height * MAX_WIDTH // width))
    return resize(image, *size), MAX_WIDTH / width


def draw(image: np.ndarray, scale: float, boxes: Sequence[LiveBox], roi: Roi | None, width: int, height: int
         ) -> None:
    """Draw on the (downscaled) frame: the ROI polygon, each box with its width in frame pixels, green
    when at least MIN_PLATE_WIDTH_PX, orange when narrower, grey when outside the ROI."""
    if roi is not None:
        points = np.round(roi.polygon(width, height) * scale).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(image, [points], True, ROI_COLOUR, 1, cv2.LINE_AA)
    for box in boxes:
        wide = box.width_px >= MIN_PLATE_WIDTH_PX
        colour = WIDE_COLOUR if wide else NARROW_COLOUR
        colour = colour if box.in_roi else OUTSIDE_COLOUR
        x1, y1, x2, y2 = (round(v * scale) for v in (box.x1, box.y1, box.x2, box.y2))
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, 2)
        label = f"{box.width_px} px" + ("" if wide else f" < {MIN_PLATE_WIDTH_PX}")
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        top = y1 - th - 6 if y1 - th - 6 >= 0 else y2
        cv2.rectangle(image, (x1, top), (x1 + tw + 6, top + th + 6), (0, 0, 0), cv2.FILLED)
        cv2.putText(image, label, (x1 + 3, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1,
                    cv2.LINE_AA)


def write_private(path: Path, data: bytes) -> None:
    """Atomically: a reader sees the old frame or the new one, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)


class LiveView:
    """The worker's state: the frame last written per lane, and the detector, loaded at the first watched
    frame by ``load_detector`` (None: frames without boxes). ``busy(lane)``: whether the lane reads plates
    now (then its frame is written without running the detector)."""

    def __init__(self, state_dir: Path, lanes: Sequence[LiveLane], load_detector: Callable[[], Detect] | None,
                 busy: Callable[[str], bool] = lambda lane: False) -> None:
        self.state_dir, self.lanes, self.busy = state_dir, tuple(lanes), busy
        self._load_detector = load_detector
        self._detect: Detect | None = None
        self._detector_problem = "" if load_detector else "no detector"
        self.sent: dict[str, int] = {}  # lane -> the sequence number last written

    def publish_once(self) -> int:
        """Write the new frame (and its boxes) of every watched lane; how many were written."""
        now, written = time.time(), 0
        for lane in self.lanes:
            frame = lane.source.latest
            if frame is None or self.sent.get(lane.name) == frame.sequence or \
                    not watched(watch_path(self.state_dir, lane.name), now):
                continue
            height, width = frame.image.shape[:2]
            boxes, note = self._boxes(lane, frame.image)
            image, scale = downscaled(frame.image)
            if image is frame.image:
                image = image.copy()  # never draw on the camera's frame: the lane may read it
            draw(image, scale, boxes, lane.roi, width, height)
            ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if not ok:
                continue
            write_private(frame_path(self.state_dir, lane.name), data.tobytes())
            info = frame_info(lane.name, frame.sequence, width, height, boxes, note)
            write_private(boxes_path(self.state_dir, lane.name), json.dumps(info).encode())
            self.sent[lane.name] = frame.sequence
            written += 1
        return written

    def _boxes(self, lane: LiveLane, image: np.ndarray) -> tuple[list[LiveBox], str]:
        """The detector's boxes on ``image``, or none and why."""
        if self.busy(lane.name):
            return [], "lane busy reading a vehicle: boxes paused"
        detect = self._detector()
        if detect is None:
            return [], f"detector off: {self._detector_problem}"
        try:
            found = detect(image)
        except Exception as exc:  # noqa: BLE001 - a failed box never stops the frame
            log.warning("live view: detector failed on lane %s: %s", lane.name, exc)
            return [], f"detector failed: {exc}"
        height, width = image.shape[:2]
        return live_boxes(found, lane.roi, width, height), ""

    def _detector(self) -> Detect | None:
        if self._detect is None and self._load_detector is not None:
            try:
                self._detect = self._load_detector()
                log.info("live view: detector loaded")
            except Exception as exc:  # noqa: BLE001 - no boxes, but the frames still flow
                self._detector_problem = str(exc)
                log.warning("live view without boxes: cannot load the detector: %s", exc)
            self._load_detector = None  # tried once
        return self._detect


def lower_priority(nice: int = LIVE_NICE) -> None:
    """Raise the calling thread's nice value (Linux: a thread id is a PRIO_PROCESS target)."""
    with contextlib.suppress(OSError, AttributeError):
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)


async def live_loop(view: LiveView, stop: asyncio.Event) -> None:
    """Until ``stop``: ``view.publish_once`` at LIVE_FPS on a low-priority thread of its own, off the event
    loop; failures are logged, never raised."""
    directory = live_dir(view.state_dir)
    try:
        directory.mkdir(mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)
    except OSError as exc:
        log.warning("live view off: cannot make %s (%s)", directory, exc)
        return
    loop = asyncio.get_running_loop()
    worker = ThreadPoolExecutor(1, thread_name_prefix="liveview", initializer=lower_priority)
    try:
        while not stop.is_set():
            try:
                await loop.run_in_executor(worker, view.publish_once)
            except Exception:  # noqa: BLE001 - the live view must never reach the gates
                log.exception("live view frame failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0 / LIVE_FPS)
    finally:  # never wait for a frame here: a detector wedged in ONNX would hold the daemon's shutdown
        worker.shutdown(wait=False)
