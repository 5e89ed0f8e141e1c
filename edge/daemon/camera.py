"""Camera side of a lane: the frame source (live, or a recording played in wall-clock time) and the
burst capture that turns frames into plate reads and one evidence crop.

A *recording* is a JSON manifest ``{"fps": F, "start_epoch": T, "frames": ["f0000.jpg", ...]}``
(paths relative to the manifest). Frame ``i`` is live at ``T + i / F``, looping, so a recorded
source behaves like a live camera: whatever is in view *now* is what the daemon reads. The file is
re-read when it changes, so a harness (demo, tests, chaos) can change the scene in front of the
camera as vehicles come and go; the daemon never learns which vehicle is coming.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from edge.clock import wall_clock_ms
from edge.lanes.machine import BurstDone, Snapshot
from edge.vision import detector
from edge.vision.camera import FrameSource
from edge.vision.reader import PlateReader
from edge.vision.roi import Roi
from edge.vision.types import PlateRead

log = logging.getLogger(__name__)
MANIFEST_SUFFIX = ".json"
BURST_TIMEOUT_S = 2.5  # a burst waits at most this long for its frames
EVIDENCE_MARGIN = (0.3, 0.6)  # evidence crop margin, fractions of the plate box width and height


@dataclass(frozen=True)
class Recording:
    fps: float
    start_epoch: float
    frames: tuple[Path, ...]

    def index_at(self, epoch: float) -> int:
        return int(max(0.0, epoch - self.start_epoch) * self.fps) % len(self.frames)


def load_recording(path: Path) -> Recording:
    """Parse a recording manifest; ValueError names the file and the bad field."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        fps, start, names = float(data["fps"]), float(data["start_epoch"]), list(data["frames"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"camera recording {path}: expected JSON with fps, start_epoch, frames: "
                         f"{exc}") from None
    if not (0 < fps <= 120) or not names:
        raise ValueError(f"camera recording {path}: fps must be 0..120 and frames non-empty")
    return Recording(fps, start, tuple(path.parent / str(n) for n in names))


class AnchoredCapture:
    """A ``cv2.VideoCapture`` look-alike playing a recording manifest in wall-clock time."""

    def __init__(self, manifest: Path, clock: Callable[[], float] = time.time) -> None:
        self.manifest = manifest
        self.clock = clock
        self._stamp: int | None = None
        self._decoded: dict[Path, np.ndarray] = {}  # a recording loops over few files: decode each once
        self.recording = self._reload()
        self._last_index: int | None = None

    def _reload(self) -> Recording:
        stamp = self.manifest.stat().st_mtime_ns
        if stamp != self._stamp:
            self.recording = load_recording(self.manifest)
            self._stamp = stamp
            self._decoded = {p: img for p, img in self._decoded.items() if p in self.recording.frames}
        return self.recording

    def isOpened(self) -> bool:  # noqa: N802 - the cv2 interface
        return True

    def read(self) -> tuple[bool, np.ndarray | None]:
        try:
            recording = self._reload()
        except (OSError, ValueError) as exc:
            log.warning("camera recording %s unusable: %s", self.manifest, exc)
            return False, None
        index = recording.index_at(self.clock())
        if index == self._last_index:  # wait for the next frame to go live
            period = 1.0 / recording.fps
            time.sleep(period - (self.clock() - recording.start_epoch) % period)
            index = recording.index_at(self.clock())
        self._last_index = index
        path = recording.frames[index]
        image = self._decoded.get(path)
        if image is None:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is not None and len(self._decoded) < 16:
                self._decoded[path] = image
        return image is not None, image

    def release(self) -> None:
        self._last_index = None


def _open_recording(manifest: Path) -> AnchoredCapture | None:
    """None (the frame source retries with back-off) while the manifest is missing or bad."""
    try:
        return AnchoredCapture(manifest)
    except (OSError, ValueError) as exc:
        log.warning("camera recording %s unusable: %s", manifest, exc)
        return None


def open_frame_source(source: str, fps: int) -> FrameSource:
    """A started frame source for a lane's ``camera.source``: a recording manifest, or anything
    OpenCV opens (device index, stream URL, video file, looped)."""
    if source.endswith(MANIFEST_SUFFIX) and "://" not in source:
        manifest = Path(source)
        load_recording(manifest)  # a bad manifest is a start-up error, not a silent black camera
        # AnchoredCapture is a cv2.VideoCapture look-alike (isOpened, read, release): duck-typed.
        source_ = FrameSource(source, queue_size=2, loop=True,
                              opener=lambda _src: _open_recording(manifest))  # type: ignore[arg-type,return-value]
        return source_.start()
    return FrameSource(source, queue_size=2, loop=True, fps_limit=fps).start()


def camera_health(source: FrameSource, stall_after_s: float, now: float) -> dict[str, object]:
    """``{"state": "ok"|"stalled", "silent_s": seconds without a decodable frame, "read_failures": n}``;
    a source that never gave a frame is silent since it started (``now``: monotonic seconds)."""
    since = source.last_frame_at if source.last_frame_at is not None else source.started_at
    silent = max(0.0, now - since)
    return {"state": "stalled" if silent > stall_after_s else "ok", "silent_s": round(silent, 1),
            "read_failures": source.read_failures}


class Approach(Protocol):
    """Approach reading (:class:`edge.daemon.approach.ApproachReader`) as a lane's camera uses it."""

    def take(self, burst_no: int, evidence_dir: Path, name: str) -> BurstDone | None:
        """The track of the car at the loop as burst ``burst_no``, or None (read a burst)."""

    def health(self) -> dict[str, object]: ...

    def stop(self, timeout: float = 5.0) -> None: ...


@dataclass(frozen=True)
class LaneCamera:
    """One lane's camera as its lane shell uses it: the frame source, the daemon's plate reader (shared by
    the lanes), the lane's region of interest, where the evidence crops go, and its approach reading
    (None: off)."""

    lane: str
    source: FrameSource
    reader: PlateReader
    evidence_dir: Path
    roi: Roi | None = None
    timeout_s: float = BURST_TIMEOUT_S
    approach: Approach | None = None
    wall_ms: Callable[[], int] = wall_clock_ms  # the daemon's best time (edge.clock): dates the evidence

    def burst(self, burst_no: int, count: int) -> BurstDone:
        """Burst ``burst_no`` (in a worker thread): the approach track of the car at the loop when there is
        a fresh, unambiguous one; else read ``count`` fresh frames (stale queued ones are dropped first),
        keep the best plate read of each (inside the lane's ``roi``), and save the best read's plate crop
        as evidence (JPEG, sha256 of the file), its file dated with ``wall_ms``: the kernel's date of a
        crop written while the clock was behind (a Pi booted in 1970) would make the retention delete it
        as soon as NTP steps the clock forward."""
        at_ms = self.wall_ms()
        done = self._burst(burst_no, count, f"{self.lane}-{at_ms}-{burst_no}")
        if done.snapshot is not None:
            date_file(Path(done.snapshot.path), at_ms)
        return done

    def _burst(self, burst_no: int, count: int, name: str) -> BurstDone:
        frames = self.source
        if self.approach is not None and (taken := self.approach.take(burst_no, self.evidence_dir, name)):
            return taken
        while frames.get(timeout=0) is not None:
            pass
        deadline = time.monotonic() + self.timeout_s
        reads: list[PlateRead] = []
        best: tuple[float, np.ndarray, PlateRead] | None = None
        for _ in range(count):
            frame = frames.get(timeout=max(0.0, deadline - time.monotonic()))
            if frame is None:
                break
            found = self.reader.read(frame.image, self.roi)
            if not found:
                continue
            reads.append(found[0])
            if best is None or found[0].confidence > best[0]:
                best = (found[0].confidence, frame.image, found[0])
        if best is None:
            return BurstDone(burst_no, tuple(reads))
        return BurstDone(burst_no, tuple(reads), save_crop(best[1], best[2].box, self.evidence_dir, name))

    def health(self, stall_after_s: float, now: float) -> dict[str, object]:
        health = camera_health(self.source, stall_after_s, now)
        if self.approach is not None:
            health["approach"] = self.approach.health()
        return health


def date_file(path: Path, at_ms: int) -> None:
    """Set ``path``'s access and modification times to ``at_ms`` (unix ms); a failure only logs."""
    try:
        os.utime(path, ns=(at_ms * 1_000_000, at_ms * 1_000_000))
    except OSError as exc:
        log.warning("evidence crop %s not dated: %s", path, exc)


def save_crop(image: np.ndarray, box: tuple[float, float, float, float], directory: Path,
              name: str) -> Snapshot | None:
    """The plate region (with a margin) as JPEG, readable by the daemon's user only (0600, in a 0700
    directory: a plate crop is personal data); evidence must never stop a pass, so failures log."""
    crop = detector.cut(image, box, EVIDENCE_MARGIN[0], EVIDENCE_MARGIN[1], clip=True)
    ok, data = cv2.imencode(".jpg", crop if crop.size else image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        return None
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = directory / f"{name}.jpg"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.tobytes())
    except OSError as exc:
        log.warning("evidence crop not saved: %s", exc)
        return None
    return Snapshot(str(path), hashlib.sha256(data.tobytes()).hexdigest())
