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

from dataclasses import dataclass, field
from enum import StrEnum

from edge.access.plates import DEFAULT_TABLE, ConfusionTable
from edge.config import Config
from edge.identity import normalise_plate


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


def list_entry(value: str) -> str:
    """One allow/deny entry as the decision compares it: a lower-case commitment or a normalised plate
    (``edge.config`` has checked that it is one or the other)."""
    return value.lower() if value.lower().startswith("0x") else normalise_plate(value)


def policy_from_config(cfg: Config, override: Override = Override.NONE) -> Policy:
    """The access policy of the validated config (``[policy]``, ``gateway.lot_id``,
    ``vision.min_confidence``) plus the operator's current override (runtime state, not config)."""
    p = cfg.policy
    pairs = [(c.a, c.b, c.cost) for c in p.confusions]
    return Policy(
        lot_id=cfg.gateway.lot_id,
        grace_before_s=p.grace_before_s,
        grace_after_s=p.grace_after_s,
        max_plate_distance=p.max_plate_distance,
        max_candidates=p.max_candidates,
        min_confidence=cfg.vision.min_confidence,
        confusions=ConfusionTable.from_pairs(pairs) if pairs else DEFAULT_TABLE,
        anti_passback=AntiPassback(p.anti_passback),
        allow=frozenset(map(list_entry, p.allow_list)),
        deny=frozenset(map(list_entry, p.deny_list)),
        capacity=p.capacity,
        override=override,
    )
