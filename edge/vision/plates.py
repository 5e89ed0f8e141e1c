"""Plate text normalisation and region format patterns (pure functions, no I/O).

Policy for look-alike characters: readers report what they read; `fold_lookalikes` maps O->0 and I->1
(the two confusions that real plates and their labels get wrong most often) for comparisons only;
`fit_layout` fixes a read when a region pattern says which positions are letters or digits, with the
OCR's per-character probabilities, and may also drop one stray
character at either end (a coat of arms, a state emblem or a plate frame read as a letter).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from edge.identity import LOOKALIKES, normalise_plate

FOLDED_LETTERS = "OI"  # the look-alikes real plates and their labels get wrong most often
# Each folded letter -> its cheapest digit look-alike in the one table (O->0, I->1).
FOLDS = str.maketrans({
    letter: min((cost, digit) for a, b, cost in LOOKALIKES for x, digit in ((a, b), (b, a))
                if x == letter and digit.isdigit())[1]
    for letter in FOLDED_LETTERS})

# Pattern alphabet: A = letter, 9 = digit, * = either. A region lists the national layouts of its plates
# (separators removed); vanity plates are left out on purpose, because a pattern that accepts anything
# cannot tell a misread from a plate.
_GERMAN = tuple(
    "A" * district + "A" * letters + "9" * digits
    for district in (1, 2, 3)
    for letters in (1, 2)
    for digits in (1, 2, 3, 4)
    if district + letters + digits <= 8
)
COUNTRY_PATTERNS: dict[str, tuple[str, ...]] = {
    "at": ("A99999A", "AA9999A", "AA999AA", "AA99AAA", "A9999A", "AA999A", "AA99AA", "A999AA"),
    "be": ("9AAA999",),
    "bg": ("AA9999AA", "A9999AA"),
    "ch": ("AA999999", "AA99999", "AA9999", "AA999"),
    "cz": ("9A*9999",),  # 1B2 5790, 1AB 2345 (Czech plates never use the letters G, O, Q and W)
    "de": _GERMAN,
    "es": ("9999AAA",),
    "fr": ("AA999AA",),
    "hr": ("AA999AA", "AA9999AA", "AA999A", "AA9999A"),
    "hu": ("AAA999", "AAAA999"),
    "it": ("AA999AA",),
    "nl": ("99AAA9", "9AAA99", "AA999A", "A999AA", "AAA99A", "A99AAA", "9AA999", "999AA9", "AA99AA"),
    "pl": (
        "AA99999",
        "AA9999A",
        "AA999AA",
        "AA9A999",
        "AA9AA99",
        "AAA99999",
        "AAA9999A",
        "AAA999AA",
        "AAAA999",
        "AAA9AA9",
        "AAA99AA",
        "AAA9A99",
        "AAA99A9",
    ),
    "ro": ("AA99AAA", "A99AAA", "A999AAA"),
    "si": ("AA99999", "AAA999", "AAA99A", "AA999AA"),
    "sk": ("AA999AA",),
    "uk": ("AA99AAA",),
}
REGION_PATTERNS: dict[str, tuple[str, ...]] = {
    "any": (),
    "br": ("AAA9999", "AAA9A99"),  # Brazil: old grey plates and Mercosur
    "eu": tuple(dict.fromkeys(p for patterns in COUNTRY_PATTERNS.values() for p in patterns)),
    "us": (),  # US layouts vary by state and vanity plates are common: no constraint
    **COUNTRY_PATTERNS,
}


def normalise(text: str) -> str:
    """Upper-case and drop separators (spaces, dashes, dots, anything not A-Z or 0-9): the OCR edge's
    lenient use of the one plate normaliser, :func:`edge.identity.normalise_plate`."""
    return normalise_plate(text, lenient=True)


def fold_lookalikes(text: str) -> str:
    """Map O->0 and I->1 so that reads differing only in those look-alikes compare equal."""
    return normalise(text).translate(FOLDS)


def matches(text: str, pattern: str) -> bool:
    """True when `text` has the pattern's length and each position has the pattern's class."""
    if len(text) != len(pattern):
        return False
    return all(_fits(char, kind) for char, kind in zip(text, pattern, strict=True))


def matches_any(text: str, patterns: Iterable[str]) -> bool:
    """True when `text` matches one of `patterns` as it is (no look-alike swaps)."""
    return any(matches(text, pattern) for pattern in patterns)


def _fits(char: str, kind: str) -> bool:
    if kind == "A":
        return char.isalpha()
    if kind == "9":
        return char.isdigit()
    return char.isalnum()


def region_patterns(region: str) -> tuple[str, ...]:
    """Layouts of a region code, or of several joined by commas ("sk,cz"); a bad code raises ValueError
    naming the allowed ones. "any" and "us" add no layout (reads are taken as read)."""
    layouts: list[str] = []
    for code in (part.strip().lower() for part in region.split(",")):
        if code not in REGION_PATTERNS:
            allowed = ", ".join(REGION_PATTERNS)
            raise ValueError(
                f"unknown plate region {code!r} in {region!r}; allowed (comma-separated): {allowed}"
            )
        layouts.extend(REGION_PATTERNS[code])
    return tuple(dict.fromkeys(layouts))


@dataclass(frozen=True)
class LayoutFit:
    """A read refitted to a region layout: text, confidence per character, the layout and its log score."""

    text: str
    char_confidences: tuple[float, ...]
    pattern: str
    log_score: float


# Costs in log-probability: dropping one end character is worth about a 1-in-20 read; a fit scoring below
# MIN_LAYOUT_LOG_SCORE is no evidence of the layout, and the raw read stands (a foreign or vanity plate).
TRIM_LOG_COST = math.log(0.05)
MIN_LAYOUT_LOG_SCORE = math.log(1e-3)


def fit_layout(
    rows: Sequence[Sequence[float]], alphabet: str, patterns: Iterable[str], max_trim: int = 1
) -> LayoutFit | None:
    """The most probable reading of `rows` that fits one of `patterns`, or None when none fits well.

    `rows` are the probability rows (over `alphabet`) of the characters the OCR kept, in order. Each
    position takes its most probable character of the class the layout asks for (letter, digit or
    either); its confidence is that probability renormalised within the class. Up to `max_trim`
    characters may be dropped at each end, each at TRIM_LOG_COST.
    """
    by_length: dict[int, list[str]] = {}
    for pattern in patterns:
        by_length.setdefault(len(pattern), []).append(pattern)
    classes = {kind: [i for i, c in enumerate(alphabet) if _fits(c, kind)] for kind in "A9*"}
    best_of = [{kind: _best_in_class(row, allowed) for kind, allowed in classes.items()} for row in rows]
    best: tuple[float, int, str] | None = None  # (log score, lead, pattern)
    for lead in range(max_trim + 1):
        for trail in range(max_trim + 1):
            kept = best_of[lead : len(rows) - trail]
            for pattern in by_length.get(len(kept), []) if kept else []:
                score = (lead + trail) * TRIM_LOG_COST
                score += sum(position[kind][1] for position, kind in zip(kept, pattern, strict=True))
                if best is None or score > best[0]:
                    best = (score, lead, pattern)
    if best is None or best[0] < MIN_LAYOUT_LOG_SCORE:
        return None
    score, lead, pattern = best
    picks = [position[kind] for position, kind in zip(best_of[lead:], pattern, strict=False)]
    text = "".join(alphabet[index] for index, _, _ in picks)
    return LayoutFit(text, tuple(share for _, _, share in picks), pattern, score)


def _best_in_class(row: Sequence[float], allowed: list[int]) -> tuple[int, float, float]:
    """(index, log probability, probability within the class) of a row's most probable allowed char."""
    if not allowed:
        return 0, math.log(1e-12), 0.0
    index = max(allowed, key=lambda i: row[i])
    mass = sum(row[i] for i in allowed)
    probability = float(row[index])
    return index, math.log(max(probability, 1e-12)), probability / mass if mass > 0 else 0.0
