"""The access policy of one lot, built from the validated config plus the runtime override.

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
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from edge.access.plates import DEFAULT_TABLE, ConfusionTable
from edge.config import Config
from edge.errors import ParkgateError
from edge.identity import normalise_plate

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


class PolicyError(ParkgateError, ValueError):
    """A policy value that cannot be used; the message names the key, the value and what is allowed."""


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
    except ValueError as exc:
        raise PolicyError(f"{key}: {exc}") from None


def _entries(key: str, values: Iterable[str]) -> frozenset[str]:
    return frozenset(list_entry(key, v) for v in values)


def _confusions(pairs: Iterable[tuple[str, str, float]]) -> ConfusionTable:
    pairs = tuple(pairs)
    if not pairs:
        return DEFAULT_TABLE
    try:
        return ConfusionTable.from_pairs(pairs)
    except ValueError as exc:
        raise PolicyError(f"policy.confusions: {exc}") from None


def policy_from_config(cfg: Config, override: Override = Override.NONE) -> Policy:
    """The access policy of the validated config (``[policy]``, ``gateway.lot_id``,
    ``vision.min_confidence``) plus the operator's current override (runtime state, not config).

    Raises :class:`PolicyError` naming the key for list entries that are neither a plate nor a
    commitment, and for confusion pairs that are not two different letters/digits.
    """
    p = cfg.policy
    return Policy(
        lot_id=cfg.gateway.lot_id,
        grace_before_s=p.grace_before_s,
        grace_after_s=p.grace_after_s,
        max_plate_distance=p.max_plate_distance,
        max_candidates=p.max_candidates,
        min_confidence=cfg.vision.min_confidence,
        confusions=_confusions((c.a, c.b, c.cost) for c in p.confusions),
        anti_passback=AntiPassback(p.anti_passback),
        allow=_entries("policy.allow_list", p.allow_list),
        deny=_entries("policy.deny_list", p.deny_list),
        capacity=p.capacity,
        override=override,
    )
