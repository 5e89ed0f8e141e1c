"""The access policy of one lot, built and validated from plain config values.

Allow and deny lists accept two forms per entry, chosen by the operator:
- a plain plate (``"AB-123-CD"``): convenient, stays on the device only (the config file is local,
  never published to chain or MQTT);
- a vehicle commitment (``"0x"`` + 64 hex digits): for lists distributed by a fleet operator
  without revealing plates.
Deny lists match exactly (the read plate or its commitment); allow lists match with the same OCR
confusion tolerance as bookings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from edge.access.plates import DEFAULT_TABLE, ConfusionTable, PlateError, normalise_plate

COMMITMENT_RE = re.compile(r"^0x[0-9a-f]{64}$")


class AntiPassback(StrEnum):
    """OFF: ignore presence. SOFT: allow but flag a violation. HARD: refuse the violating pass."""

    OFF = "off"
    SOFT = "soft"
    HARD = "hard"


class Override(StrEnum):
    """Operator override of the whole lot: NONE (normal), OPEN (every pass allowed), CLOSED (none)."""

    NONE = "none"
    OPEN = "open"
    CLOSED = "closed"


class PolicyError(ValueError):
    """A policy value out of range; the message names the key, the value and what is allowed."""


@dataclass(frozen=True, slots=True)
class Policy:
    lot_id: str
    grace_before_s: int = 900
    grace_after_s: int = 900
    max_plate_distance: float = 1.0
    max_candidates: int = 64
    min_confidence: float = 0.5
    confusions: ConfusionTable = DEFAULT_TABLE
    anti_passback: AntiPassback = AntiPassback.HARD
    allow: frozenset[str] = field(default=frozenset())
    deny: frozenset[str] = field(default=frozenset())
    capacity: int | None = None
    override: Override = Override.NONE


def is_commitment(value: str) -> bool:
    return bool(COMMITMENT_RE.match(value))


def list_entry(key: str, value: object) -> str:
    """Normalise one allow/deny entry: a lower-case commitment or a normalised plate."""
    if not isinstance(value, str):
        raise PolicyError(f"{key}: entry {value!r} must be a string (a plate or a 0x-commitment)")
    if value.lower().startswith("0x"):
        if not is_commitment(value.lower()):
            raise PolicyError(f"{key}: entry {value!r} looks like a commitment but is not 0x + 64 hex digits")
        return value.lower()
    try:
        return normalise_plate(value)
    except PlateError as exc:
        raise PolicyError(f"{key}: {exc}") from None


def _number(values: Mapping[str, Any], key: str, default: float, lo: float, hi: float, kind: type) -> Any:
    value = values.get(key, default)
    wrong_type = not isinstance(value, int | float) or (kind is int and not isinstance(value, int))
    if isinstance(value, bool) or wrong_type:
        raise PolicyError(f"{key}: {value!r} is not a{'n integer' if kind is int else ' number'}")
    if not lo <= value <= hi:
        raise PolicyError(f"{key}: {value!r} is out of range; allowed {lo}..{hi}")
    return kind(value)


def _choice(values: Mapping[str, Any], key: str, enum: type[StrEnum], default: StrEnum) -> Any:
    value = values.get(key, default.value)
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(e.value for e in enum)
        raise PolicyError(f"{key}: {value!r} is not one of {allowed}") from None


def _entries(values: Mapping[str, Any], key: str) -> frozenset[str]:
    raw = values.get(key, ())
    if isinstance(raw, str) or not isinstance(raw, Iterable):
        raise PolicyError(f"{key}: expected a list of plates or commitments, got {raw!r}")
    return frozenset(list_entry(key, v) for v in raw)


def _confusions(values: Mapping[str, Any]) -> ConfusionTable:
    raw = values.get("confusions")
    if raw is None:
        return DEFAULT_TABLE
    try:
        return ConfusionTable.from_pairs((str(a), str(b), float(w)) for a, b, w in raw)
    except (TypeError, ValueError) as exc:
        raise PolicyError(f"confusions: {exc}; expected a list of [char, char, cost > 0]") from None


KNOWN_KEYS = frozenset({
    "lot_id", "grace_before_s", "grace_after_s", "max_plate_distance", "max_candidates", "min_confidence",
    "confusions", "anti_passback", "allow", "deny", "capacity", "override",
})


def policy_from_mapping(values: Mapping[str, Any]) -> Policy:
    """Build a :class:`Policy` from config values (e.g. the ``[access]`` table), validating each."""
    unknown = sorted(set(values) - KNOWN_KEYS)
    if unknown:
        raise PolicyError(f"unknown access keys {unknown}; allowed: {sorted(KNOWN_KEYS)}")
    lot_id = values.get("lot_id")
    if not isinstance(lot_id, str) or not lot_id.strip():
        raise PolicyError(f"lot_id: {lot_id!r} must be a non-empty string")
    capacity = values.get("capacity")
    if capacity is not None:
        capacity = _number(values, "capacity", 0, 0, 1_000_000, int)
    return Policy(
        lot_id=lot_id,
        grace_before_s=_number(values, "grace_before_s", 900, 0, 86_400, int),
        grace_after_s=_number(values, "grace_after_s", 900, 0, 86_400, int),
        max_plate_distance=_number(values, "max_plate_distance", 1.0, 0.0, 4.0, float),
        max_candidates=_number(values, "max_candidates", 64, 1, 512, int),
        min_confidence=_number(values, "min_confidence", 0.5, 0.0, 1.0, float),
        confusions=_confusions(values),
        anti_passback=_choice(values, "anti_passback", AntiPassback, AntiPassback.HARD),
        allow=_entries(values, "allow"),
        deny=_entries(values, "deny"),
        capacity=capacity,
        override=_choice(values, "override", Override, Override.NONE),
    )
