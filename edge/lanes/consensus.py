"""Plate consensus over a capture burst: the plate most frames agree on, or none."""

from __future__ import annotations

from collections.abc import Sequence
from statistics import fmean

from edge.access.plates import PlateError, normalise_plate
from edge.access.types import PlateRead


def consensus(reads: Sequence[PlateRead], min_votes: int) -> PlateRead | None:
    """The normalised plate read by the most frames (ties broken by summed confidence).

    Unreadable texts are ignored. Needs at least ``min_votes`` agreeing frames, else None. The
    result carries the group's mean confidence, per-character means and the snapshot of the most
    confident frame of the group (the evidence kept with the decision).
    """
    groups: dict[str, list[PlateRead]] = {}
    for read in reads:
        try:
            groups.setdefault(normalise_plate(read.text), []).append(read)
        except PlateError:
            continue
    if not groups:
        return None
    plate, group = max(groups.items(), key=lambda kv: (len(kv[1]), sum(_conf(r) for r in kv[1]), kv[0]))
    if len(group) < min_votes:
        return None
    best = max(group, key=_conf)
    per_char = [r.char_confidences for r in group if len(r.char_confidences) == len(plate)]
    chars = tuple(fmean(column) for column in zip(*per_char, strict=True)) if per_char else ()
    return PlateRead(plate, fmean(_conf(r) for r in group), chars, best.snapshot_path, best.snapshot_sha256)


def _conf(read: PlateRead) -> float:
    """Confidence clamped to 0..1; NaN counts as 0 (a broken model output must not win)."""
    c = read.confidence
    return min(1.0, max(0.0, c)) if c == c else 0.0
