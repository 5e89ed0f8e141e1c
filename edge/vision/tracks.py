"""Plate tracks over a car's approach (pure): the same plate seen over several moving frames, its box
growing as the car drives up to the barrier, read by consensus over the whole approach.

The shell (`edge.daemon.approach`) feeds :func:`observe` with the reads of each frame the motion gate let
through, and asks :func:`choose` when the presence loop fires. A track is never a reason to open: it only
replaces the burst of frames read after the trigger, and only when it is unambiguous:

- it is the newest track, seen within ``window_s`` of the trigger (a car that turned away goes stale);
- it is still in view: seen in the last frame read (``miss_frames`` 1: a frame that moved and showed no
  plate means the car left the region of interest, or the reader lost it: either way, read afresh);
- no other plate was seen within the window (two cars close together in one lane: the lane falls back to
  a fresh read rather than guess which car is at the loop); another plate is a track of ``min_votes``
  reads or more (one stray misread does not count) that was seen beside the newest track, somewhere
  else or before frames without a plate, not one that ended where the newest began in the next frame
  read (the same car, misread while it was far);
- it did not recede (its boxes did not shrink by more than their jitter: the car came closer, or stopped),
  and has at least ``min_votes`` reads for the consensus.

The shell may check a track against the frame in view at the trigger (:func:`confirm`): when the scene
moved since the track's last read, or the track has one read only, one read of that frame that continues
the track, with no other plate in it, lets the track decide (that read votes too). That frame must be
newer than the track's last read and at most ``max_frame_age_s`` old at the trigger: a frozen camera (an
RTSP stall) keeps showing the car's last frame, which says nothing about the car at the loop now.

A read joins a track when its box is near the track's last box (centre within ``max_jump`` box widths,
width within ``max_scale``) and its text is like the track's consensus text (``difflib`` ratio of at least
``same_text``: a misread character or two still joins). Memory is bounded: at most ``max_tracks`` tracks of
``max_sightings`` reads each, and tracks older than the window are dropped at each frame.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from edge.vision.consensus import consensus
from edge.vision.types import PlateRead


@dataclass(frozen=True)
class TrackSettings:
    window_s: float = 3.0  # a track is fresh this long after it was last seen
    min_confidence: float = 0.5  # a read this sure starts a track (weaker reads only join one) ...
    min_chars: int = 4  # ... when it has this many characters (not a fragment of a sign or a sticker)
    min_votes: int = 2  # reads a track needs before it can decide a pass
    miss_frames: int = 1  # moving frames read in a row without the plate: it left the region
    min_growth: float = 0.8  # ``Track.growth`` of an approaching car, at least: below 1 by more than
    # box jitter (10-20 % from frame to frame), so a car read only as it stopped (a busy reader: two late
    # reads, the second 11 % narrower) still decides, and a car backing away (every box narrower) does not
    same_text: float = 0.7  # difflib ratio from which a read is the same plate as a track
    max_jump: float = 1.5  # a box centre moves at most this many box widths between sightings
    max_scale: float = 2.5  # ... and its width changes at most by this factor
    max_tracks: int = 8
    max_sightings: int = 40
    max_frame_age_s: float = 0.5  # the camera's newest frame shows the scene now when at most this old: a
    # frame comes every 0.1 s (10 fps, the default lanes.camera.fps), 0.5 s leaves room for a busy 2-core
    # box delaying the capture thread, and a frozen camera is caught long before its health says stalled


@dataclass(frozen=True)
class Sighting:
    read: PlateRead
    at: float  # seconds on the shell's monotonic clock
    frame: int = 0  # the number of the frame read (``Tracks.frames`` when it was observed)


@dataclass(frozen=True)
class Track:
    track_id: int
    sightings: tuple[Sighting, ...]
    misses: int = 0  # moving frames in a row without this plate since it was last seen
    sure: bool = False  # a read of at least ``min_confidence``: a plate, not noise

    @property
    def last_seen(self) -> float:
        return self.sightings[-1].at

    @property
    def reads(self) -> tuple[PlateRead, ...]:
        return tuple(s.read for s in self.sightings)

    @property
    def text(self) -> str:
        """The consensus text so far (one read is enough here: this names the track)."""
        read = consensus(self.reads)
        return read.text if read else ""

    @property
    def growth(self) -> float:
        """The widest box of the later half over the narrowest of the earlier half: above 1 when the car
        came closer (boxes of one plate differ by 10-20 % from frame to frame: one box alone is a poor
        measure), below 1 only when every later box is narrower than every earlier one."""
        widths = [_width(s.read.box) for s in self.sightings]
        k = max(1, len(widths) // 2)
        first = min(widths[:k])
        return max(widths[-k:]) / first if first > 0 else 0.0

    @property
    def best(self) -> PlateRead:
        """The most confident read (its frame's crop is the pass's evidence)."""
        return max(self.reads, key=lambda r: r.confidence)


@dataclass(frozen=True)
class Tracks:
    tracks: tuple[Track, ...] = ()
    next_id: int = 1
    frames: int = 0  # frames observed


class Why(StrEnum):
    """How :func:`choose` answered: APPROACH (a track decides) or why the lane falls back to a burst."""

    APPROACH = "approach"
    NO_TRACK = "no_track"
    STALE = "stale"
    LEFT = "left"
    UNCONFIRMED = "unconfirmed"  # the scene moved since the plate was last read (the shell checks)
    AMBIGUOUS = "ambiguous"
    FEW_READS = "few_reads"
    RECEDING = "receding"


@dataclass(frozen=True)
class Choice:
    why: Why
    track: Track | None = None
    read: PlateRead | None = None  # the consensus of the track's reads


def observe(state: Tracks, reads: Sequence[PlateRead], at: float, settings: TrackSettings) -> Tracks:
    """One moving frame's reads (best first) at time ``at``: each joins the nearest like track or starts
    one; every track not seen in this frame counts a miss."""
    tracks = [t for t in state.tracks if t.last_seen >= at - settings.window_s]
    seen: set[int] = set()
    next_id, frame = state.next_id, state.frames + 1
    for read in reads:
        if not read.text:
            continue
        index = _match(tracks, seen, read, settings)
        if index is not None:
            track = tracks[index]
            sightings = (*track.sightings, Sighting(read, at, frame))[-settings.max_sightings:]
            sure = track.sure or read.confidence >= settings.min_confidence
            tracks[index] = replace(track, sightings=sightings, misses=0, sure=sure)
            seen.add(track.track_id)
        elif read.confidence >= settings.min_confidence and len(read.text) >= settings.min_chars:
            tracks.append(Track(next_id, (Sighting(read, at, frame),), sure=True))
            seen.add(next_id)
            next_id += 1
    tracks = [t if t.track_id in seen else replace(t, misses=t.misses + 1) for t in tracks]
    newest = sorted(tracks, key=lambda t: t.last_seen)[-settings.max_tracks:]
    return Tracks(tuple(sorted(newest, key=lambda t: t.track_id)), next_id, frame)


def _match(tracks: Sequence[Track], seen: set[int], read: PlateRead, settings: TrackSettings) -> int | None:
    """Index of the track (not yet seen in this frame) this read continues, nearest box first."""
    candidates = [
        (_distance(t.sightings[-1].read.box, read.box), i)
        for i, t in enumerate(tracks)
        if t.track_id not in seen and _near(t.sightings[-1].read.box, read.box, settings)
        and same_plate(t.text, read.text, settings.same_text)
    ]
    return min(candidates)[1] if candidates else None


def choose(state: Tracks, now: float, settings: TrackSettings) -> Choice:
    """The track that decides the pass of the car at the loop now, or why there is none."""
    tracks = [t for t in state.tracks if t.sure]
    recent = [t for t in tracks if t.last_seen >= now - settings.window_s]
    if not recent:
        return Choice(Why.STALE if tracks else Why.NO_TRACK)
    newest = max(recent, key=lambda t: t.last_seen)
    if newest.misses >= settings.miss_frames:
        return Choice(Why.LEFT, newest)
    text = newest.text
    others = [t for t in recent if t is not newest and len(t.sightings) >= settings.min_votes
              and not _handed_over(t, newest, settings)]
    if any(not same_plate(t.text, text, settings.same_text) for t in others):
        return Choice(Why.AMBIGUOUS, newest)
    if len(newest.sightings) < settings.min_votes:
        return Choice(Why.FEW_READS, newest)
    if newest.growth < settings.min_growth:
        return Choice(Why.RECEDING, newest)
    read = consensus(newest.reads, settings.min_votes)
    if read is None or not read.text:
        return Choice(Why.FEW_READS, newest)
    return Choice(Why.APPROACH, newest, read)


def confirm(track: Track, reads: Sequence[PlateRead], at: float, now: float,
            settings: TrackSettings) -> Choice:
    """``track`` checked against the frame in view now, captured at ``at`` (the scene moved since the
    track's last read, or the track has too few reads): APPROACH, that frame's read voting too, when one
    read continues the track (like text, near its last box) and no other plate is in view; else
    UNCONFIRMED. A frame no newer than the track's last read, or older than ``max_frame_age_s`` at
    ``now``, is not the frame in view now (a frozen camera): UNCONFIRMED."""
    last = track.sightings[-1]
    if at <= last.at or now - at > settings.max_frame_age_s:
        return Choice(Why.UNCONFIRMED, track)
    plates = [r for r in reads if r.text and (r.confidence >= settings.min_confidence or
                                              same_plate(track.text, r.text, settings.same_text))]
    going_on = [r for r in plates if same_plate(track.text, r.text, settings.same_text)
                and _near(last.read.box, r.box, settings)]
    if len(going_on) != 1 or any(len(r.text) >= settings.min_chars for r in plates if r not in going_on):
        return Choice(Why.UNCONFIRMED, track)
    grown = replace(track, sightings=(*track.sightings, Sighting(going_on[0], at, last.frame + 1)), misses=0)
    read = consensus(grown.reads, settings.min_votes)
    if read is None or not read.text:
        return Choice(Why.UNCONFIRMED, grown)
    return Choice(Why.APPROACH, grown, read)


def _handed_over(old: Track, new: Track, settings: TrackSettings) -> bool:
    """``new`` took over where ``old`` ended, in the very next frame read: the same car read differently
    (a far plate misread in a few frames), not a second car. A second car is seen beside the first,
    somewhere else, or after frames without a plate (the first car gone)."""
    return old.sightings[-1].frame + 1 == new.sightings[0].frame and \
        _near(old.sightings[-1].read.box, new.sightings[0].read.box, settings)


def same_plate(a: str, b: str, threshold: float) -> bool:
    """Whether two reads are of one plate (a character or two misread): difflib's similarity ratio."""
    return bool(a) and bool(b) and difflib.SequenceMatcher(None, a, b).ratio() >= threshold


Box = tuple[float, float, float, float]


def _width(box: Box) -> float:
    return max(0.0, box[2] - box[0])


def _centre(box: Box) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def _distance(a: Box, b: Box) -> float:
    (ax, ay), (bx, by) = _centre(a), _centre(b)
    return float(((ax - bx) ** 2 + (ay - by) ** 2) ** 0.5)


def _near(last: Box, new: Box, settings: TrackSettings) -> bool:
    """The new box continues the last one: close to it and of a similar width."""
    wide, narrow = max(_width(last), _width(new)), min(_width(last), _width(new))
    if narrow <= 0 or wide / narrow > settings.max_scale:
        return False
    return _distance(last, new) <= settings.max_jump * wide
