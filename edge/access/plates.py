"""OCR-confusion candidates of a plate read (normalisation is edge.identity.normalise_plate, the look-alike
characters and their costs edge.identity.LOOKALIKES).

Bookings only hold commitments (a keyed hash of the normalised plate), so a fuzzy match cannot
compare strings with the booking. Instead we enumerate the plates the camera might have meant —
each character swapped for ones OCR confuses it with, every swap costing a weight — cheapest first,
up to a maximum total weight and a maximum count, and commit each of them. Only substitutions are
generated (no insertions or deletions): a dropped or extra character is a bad read, not a confusion.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from edge.identity import LOOKALIKES


@dataclass(frozen=True, slots=True)
class ConfusionTable:
    """For each character, the characters it may have been misread from, with their cost."""

    alternatives: Mapping[str, tuple[tuple[str, float], ...]]

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str, float]]) -> ConfusionTable:
        """Build a symmetric table; raises ValueError naming a bad pair (not one char each, cost <= 0)."""
        table: dict[str, dict[str, float]] = {}
        for pair in pairs:
            a, b, cost = pair
            if len(a) != 1 or len(b) != 1 or a == b or not (a + b).isalnum():
                raise ValueError(f"confusion pair {pair!r}: expected two different single letters/digits")
            if not cost > 0:
                raise ValueError(f"confusion pair {pair!r}: cost must be > 0")
            a, b = a.upper(), b.upper()
            for x, y in ((a, b), (b, a)):
                table.setdefault(x, {})[y] = min(float(cost), table.get(x, {}).get(y, float(cost)))
        return cls({ch: tuple(sorted(alts.items(), key=lambda kv: (kv[1], kv[0])))
                    for ch, alts in table.items()})


DEFAULT_TABLE = ConfusionTable.from_pairs(LOOKALIKES)


@dataclass(frozen=True, slots=True, order=True)
class Candidate:
    """A plate the read may stand for, and the summed confusion cost of getting there."""

    distance: float
    plate: str


def candidates(read: str, table: ConfusionTable, max_distance: float, max_count: int) -> Iterator[Candidate]:
    """The read itself, then confusable plates in order of increasing distance (ties by text).

    Best-first search: each popped plate spawns swaps only at positions after its last swap, so
    every combination is produced once; the heap keeps the output ordered. At most ``max_count``
    candidates, none farther than ``max_distance``.
    """
    heap: list[tuple[float, str, int]] = [(0.0, read, 0)]
    emitted = 0
    while heap and emitted < max_count:
        distance, plate, next_pos = heapq.heappop(heap)
        yield Candidate(distance, plate)
        emitted += 1
        for pos in range(next_pos, len(plate)):
            for alt, cost in table.alternatives.get(plate[pos], ()):
                new_distance = round(distance + cost, 6)
                if new_distance <= max_distance:
                    heapq.heappush(heap, (new_distance, plate[:pos] + alt + plate[pos + 1:], pos + 1))
