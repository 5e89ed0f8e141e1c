"""Agreement between plate reads (pure): multi-frame consensus over one vehicle pass, and `agree` over
the reads of several crops of one plate in one frame.

Each frame of a burst gives at most one best read. The plate length is chosen by confidence-weighted
vote; then each position is voted on by the reads of that length, weighted by their per-character
confidence. A position's confidence is the winning share of that position's weight times the mean
confidence of the reads that voted for the winner, so disagreement lowers it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from edge.vision.types import PlateRead


def consensus(reads: Sequence[PlateRead], min_votes: int = 1) -> PlateRead | None:
    """The pass's plate, or None when there are fewer than `min_votes` usable reads."""
    usable = [r for r in reads if r.text and len(r.char_confidences) == len(r.text)]
    if len(usable) < max(1, min_votes):
        return None
    length = _winning_length(usable)
    same_length = [r for r in usable if len(r.text) == length]
    chars, confidences = zip(*(_vote_position(same_length, i) for i in range(length)), strict=True)
    best = max(same_length, key=lambda r: r.confidence)
    return PlateRead("".join(chars), min(confidences), tuple(confidences), best.box, best.detector_score)


def _winning_length(reads: Sequence[PlateRead]) -> int:
    weight: dict[int, float] = defaultdict(float)
    for read in reads:
        weight[len(read.text)] += read.confidence
    return max(weight, key=lambda n: (weight[n], n))


def _vote_position(reads: Sequence[PlateRead], index: int) -> tuple[str, float]:
    weight: dict[str, float] = defaultdict(float)
    voters: dict[str, list[float]] = defaultdict(list)
    for read in reads:
        char, score = read.text[index], read.char_confidences[index]
        weight[char] += score
        voters[char].append(score)
    winner = max(weight, key=lambda c: (weight[c], c))
    total = sum(weight.values())
    share = weight[winner] / total if total > 0 else 0.0
    return winner, share * sum(voters[winner]) / len(voters[winner])


def agree(reads: Sequence[PlateRead]) -> tuple[PlateRead, float] | None:
    """The text that `reads` of one plate agree on most, weighted by confidence.

    Returns that text's most confident read and its support: the summed confidence of the reads giving
    it over the number of reads (1.0 when every read is certain and the same). None when nothing was read.
    Whole texts are voted on, not positions: crops that cut a plate differently shift its characters.
    """
    weight: dict[str, float] = defaultdict(float)
    for read in reads:
        if read.text:
            weight[read.text] += read.confidence
    if not weight:
        return None
    winner = max(weight, key=lambda text: (weight[text], text))
    best = max((r for r in reads if r.text == winner), key=lambda r: r.confidence)
    return best, weight[winner] / len(reads)
