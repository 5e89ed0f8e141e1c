"""Plate text normalisation and region format patterns (pure functions, no I/O).

Policy for look-alike characters: readers report what they read; `fold_lookalikes` maps O->0 and I->1
(the two confusions that real plates and their labels get wrong most often) for comparisons only;
`fit_pattern` fixes a read in place when a region pattern says which positions are letters or digits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

ALNUM = re.compile(r"[^0-9A-Z]")
LETTER_TO_DIGIT = {"O": "0", "Q": "0", "D": "0", "I": "1", "L": "1", "Z": "2", "S": "5", "B": "8", "G": "6"}
DIGIT_TO_LETTER = {"0": "O", "1": "I", "2": "Z", "5": "S", "8": "B", "6": "G", "4": "A", "7": "T"}
FOLDS = str.maketrans({"O": "0", "I": "1"})

# Pattern alphabet: A = letter, 9 = digit, * = either. One region may allow several layouts.
REGION_PATTERNS: dict[str, tuple[str, ...]] = {
    "br": ("AAA9999", "AAA9A99"),  # Brazil: old grey plates and Mercosur
    "hr": ("AA999AA", "AA9999AA", "AA999A", "AA9999A"),  # Croatia/Slovakia-style EU plates
    "any": (),
}


def normalise(text: str) -> str:
    """Upper-case and drop separators (spaces, dashes, dots, anything not A-Z or 0-9)."""
    return ALNUM.sub("", text.upper())


def fold_lookalikes(text: str) -> str:
    """Map O->0 and I->1 so that reads differing only in those look-alikes compare equal."""
    return normalise(text).translate(FOLDS)


def matches(text: str, pattern: str) -> bool:
    """True when `text` has the pattern's length and each position has the pattern's class."""
    if len(text) != len(pattern):
        return False
    return all(_fits(char, kind) for char, kind in zip(text, pattern, strict=True))


def _fits(char: str, kind: str) -> bool:
    if kind == "A":
        return char.isalpha()
    if kind == "9":
        return char.isdigit()
    return char.isalnum()


def fit_pattern(text: str, patterns: Iterable[str]) -> str:
    """Return `text` with look-alikes swapped to satisfy the first pattern of the same length it can.

    Text that already matches a pattern, or that no pattern of its length can fix, is returned as is.
    """
    text = normalise(text)
    for pattern in patterns:
        if len(pattern) != len(text):
            continue
        if matches(text, pattern):
            return text
        fixed = "".join(_coerce(char, kind) for char, kind in zip(text, pattern, strict=True))
        if matches(fixed, pattern):
            return fixed
    return text


def _coerce(char: str, kind: str) -> str:
    if kind == "9" and char.isalpha():
        return LETTER_TO_DIGIT.get(char, char)
    if kind == "A" and char.isdigit():
        return DIGIT_TO_LETTER.get(char, char)
    return char


def region_patterns(region: str) -> tuple[str, ...]:
    """Patterns for a region code; raises ValueError naming the allowed codes."""
    try:
        return REGION_PATTERNS[region.lower()]
    except KeyError:
        allowed = ", ".join(sorted(REGION_PATTERNS))
        raise ValueError(f"unknown plate region {region!r}; allowed: {allowed}") from None
