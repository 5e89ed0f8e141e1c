"""Approach reading for one lane: while the lane is idle, the camera's frames go through the motion gate
and the plate reader, and feed plate tracks (`edge.vision.tracks`); when the presence loop fires, the
lane's burst takes the best fresh, unambiguous track at once instead of waiting for fresh frames.

A track never opens a gate by itself: only a pass, which only the presence loop starts, asks for one
(:meth:`ApproachReader.take`), and its reads then go through the lane machine's consensus and decision
as a burst's would. Taking clears the tracks, and so does any time the lane is not idle: a car seen
before or during one pass never decides the next one.

The reader looks at the source's newest frame (``FrameSource.latest``) and never takes frames from its
queue, which the burst after the trigger (the fallback, `edge.daemon.camera.capture_burst`) reads.

"The frame in view now" (the scene did not change since the last read, or one read confirms a track) is
the newest frame only when it is newer than the last frame read and at most ``max_frame_age_s``
(`edge.vision.tracks.TrackSettings`) old: a frozen camera keeps the car's last frame as its newest, and an
old track must not decide the pass on it. The lane then reads a burst, which refuses the car when no fresh
frame comes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.daemon.camera import EVIDENCE_MARGIN, save_crop
from edge.lanes.machine import BurstDone, ReadFrom
from edge.vision import detector
from edge.vision.camera import Frame, FrameSource
from edge.vision.motion import MotionGate, changed_fraction, thumbnail
from edge.vision.reader import PlateReader
from edge.vision.roi import Roi
from edge.vision.tracks import Choice, Track, Tracks, TrackSettings, Why, choose, confirm, observe
from edge.vision.types import PlateRead

log = logging.getLogger(__name__)
POLL_S = 0.04  # how often the newest frame is looked for (a 10 fps camera gives one every 0.1 s)
FRESH_READ_S = 0.3  # a track seen in a frame this recent shows the car now, moving or not
# How long a confirmation waits for a frame newer than the last one read (the trigger often comes right
# after a read, before the camera's next frame): two frames at 10 fps. `make chaos` of 2026-12-03 decided
# 168 passes from a track without this wait, 370 with it (308 before the frame-in-view rule); a frozen
# camera gives no newer frame, so the wait ends in UNCONFIRMED and the burst, as before.
CONFIRM_WAIT_S = 0.25


@dataclass(frozen=True)
class LastRead:
    """The last frame read: when it was captured, its sequence number, and its motion thumbnail (None
    before the motion gate had a reference)."""

    at: float
    sequence: int
    thumbnail: np.ndarray | None


class ApproachReader:
    """One lane's approach reading on its own thread (``start``/``stop``). ``idle()`` says whether the
    lane waits for a car (read on the lane's loop thread: a stale answer only delays a frame)."""

    def __init__(self, frames: FrameSource, reader: PlateReader, roi: Roi | None, settings: TrackSettings,
                 idle: Callable[[], bool], name: str = "lane",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.frames, self.reader, self.roi, self.settings = frames, reader, roi, settings
        self.idle, self.clock = idle, clock
        self.gate = MotionGate(roi)
        self.reads = 0  # frames read (the motion gate let them through)
        self.reading = False  # a frame is being read now
        self.taken: dict[Why, int] = {}  # passes that asked for a track, by how they were answered
        self._tracks = Tracks()
        self._evidence: dict[int, tuple[float, np.ndarray]] = {}  # track id -> (confidence, plate crop)
        self._generation = 0  # bumped when the tracks are cleared: a read in flight is then dropped
        self._last_read: LastRead | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"approach-{name}", daemon=True)

    def start(self) -> ApproachReader:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def take(self, burst_no: int, evidence_dir: Path, name: str) -> BurstDone | None:
        """The lane's car at the loop: its track's reads as burst ``burst_no`` (evidence: the crop of the
        track's best read), or None when no track is fresh and unambiguous (``taken`` counts why). Clears
        the tracks either way."""
        with self._lock:
            now, tracks, last_read = self.clock(), self._tracks, self._last_read
            choice = choose(tracks, now, self.settings)
            if choice.why is Why.APPROACH and not self._unchanged_since_read(last_read, now):
                choice = Choice(Why.UNCONFIRMED, choice.track)
            evidence = self._evidence.get(choice.track.track_id) if choice.track else None
            self._clear()
        if choice.why in (Why.UNCONFIRMED, Why.FEW_READS) and choice.track is not None:
            choice = self._confirm(choice.track, last_read, now)
        with self._lock:
            self.taken[choice.why] = self.taken.get(choice.why, 0) + 1
        seen = ", ".join(f"{len(t.sightings)} reads {now - t.last_seen:.1f} s ago" for t in tracks.tracks)
        if choice.why is not Why.APPROACH or choice.track is None:
            log.info("burst %d: no approach track (%s): reading a burst; tracks: %s", burst_no, choice.why,
                     seen or "none")
            return None
        log.info("burst %d: from the approach track; tracks: %s", burst_no, seen)
        snapshot = None
        if evidence is not None:
            crop = evidence[1]
            snapshot = save_crop(crop, (0.0, 0.0, float(crop.shape[1]), float(crop.shape[0])), evidence_dir,
                                 name)  # the crop has its margin: the whole of it is kept
        return BurstDone(burst_no, choice.track.reads, snapshot, ReadFrom.APPROACH)

    def health(self) -> dict[str, object]:
        """For the status: frames the motion gate looked at and let through, frames read (one being read
        now?), and how the passes that asked for a track were answered (``approach`` or why not)."""
        with self._lock:
            taken = {str(why): n for why, n in self.taken.items()}
        return {"frames": self.gate.frames, "moving": self.gate.moving, "reads": self.reads,
                "reading": self.reading, "taken": taken}

    def _confirm(self, track: Track, last_read: LastRead | None, now: float) -> Choice:
        """One read of the frame in view now (in the burst's thread): the track decides if that frame
        shows its plate, near where it was last read, and no other plate (``tracks.confirm``)."""
        frame = self._next_frame_in_view(last_read, now)
        if frame is None:
            return Choice(Why.UNCONFIRMED, track)
        return confirm(track, self.reader.read(frame.image, self.roi), frame.captured_at, self.clock(),
                       self.settings)

    def _next_frame_in_view(self, last_read: LastRead | None, now: float) -> Frame | None:
        """The frame in view now, waiting up to CONFIRM_WAIT_S for one newer than the last frame read."""
        frame, deadline = self._frame_in_view(last_read, now), time.monotonic() + CONFIRM_WAIT_S
        while frame is None and time.monotonic() < deadline:
            time.sleep(POLL_S / 4)
            frame = self._frame_in_view(last_read, self.clock())
        return frame

    def _frame_in_view(self, last_read: LastRead | None, now: float) -> Frame | None:
        """The camera's newest frame when it shows the scene now: newer than the last frame read and at
        most ``max_frame_age_s`` old. None for a frozen (or stalled) camera."""
        frame = self.frames.latest
        if frame is None or now - frame.captured_at > self.settings.max_frame_age_s:
            return None
        if last_read is not None and frame.sequence <= last_read.sequence:
            return None
        return frame

    def _unchanged_since_read(self, last_read: LastRead | None, now: float) -> bool:
        """The scene is the one in which the track's plate was last read (the last frame read: the track
        was seen in it): that frame is recent, or nothing moved since in a fresh, newer frame (the car
        stopped in view). A reader that fell behind a car still moving, a car that drove off after its last
        read, or a camera that froze after it, is no track."""
        if last_read is None:
            return False
        if now - last_read.at <= FRESH_READ_S:
            return True
        frame = self._frame_in_view(last_read, now)
        if frame is None or last_read.thumbnail is None:
            return False
        gate = self.gate.settings
        seen = thumbnail(frame.image, self.roi, gate.width)
        return changed_fraction(last_read.thumbnail, seen, gate.pixel_delta) <= gate.min_fraction

    def _clear(self) -> None:
        self._tracks = Tracks(next_id=self._tracks.next_id)
        self._evidence.clear()
        self._last_read = None
        self._generation += 1

    def _run(self) -> None:
        last_sequence = -1
        was_idle = False
        while not self._stop.wait(POLL_S):
            if not self.idle():
                was_idle = False
                continue
            if not was_idle:
                # A pass ran (or the reader just started): what was seen before or during it never decides
                # the next. Cleared when the lane is idle again, not when it stops being idle: the pass's
                # burst takes the track in its own thread just after the lane left IDLE, and a clear here
                # first made it fall back to a burst now and then ("no_track", `make test` 2026-12-02).
                with self._lock:
                    self._clear()
                self.gate.reset()
            was_idle = True
            frame = self.frames.latest
            if frame is None or frame.sequence == last_sequence:
                continue
            last_sequence = frame.sequence
            try:
                self._look(frame)
            except Exception:  # noqa: BLE001 - approach reading is an optimisation: the burst remains
                log.exception("approach reading failed on a frame; the lane falls back to bursts")
                self._stop.wait(1.0)

    def _look(self, frame: Frame) -> None:
        if not self.gate.moved(frame.image):
            return
        generation = self._generation
        seen = self.gate.reference
        self.reading = True
        try:
            reads = self.reader.read(frame.image, self.roi)
        finally:
            self.reading = False
        self.reads += 1
        with self._lock:
            if generation != self._generation:
                return  # a pass took (and cleared) the tracks while this frame was read
            self._tracks = observe(self._tracks, reads, frame.captured_at, self.settings)
            self._last_read = LastRead(frame.captured_at, frame.sequence, seen)
            self._keep_evidence(frame, reads)

    def _keep_evidence(self, frame: Frame, reads: list[PlateRead]) -> None:
        """Each track's best read so far as a small plate crop (not the frame: memory stays bounded)."""
        live = {t.track_id: t for t in self._tracks.tracks}
        for track_id in [i for i in self._evidence if i not in live]:
            del self._evidence[track_id]
        for track in live.values():
            last = track.sightings[-1]
            if last.at != frame.captured_at or last.read not in reads:
                continue
            kept = self._evidence.get(track.track_id)
            if kept is None or last.read.confidence > kept[0]:
                crop = detector.cut(frame.image, last.read.box, *EVIDENCE_MARGIN, clip=True)
                self._evidence[track.track_id] = (last.read.confidence, crop.copy())
