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

from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import cached_property

from edge.access.plates import DEFAULT_TABLE, ConfusionTable
from edge.config import Config, PolicyConfig
from edge.identity import list_entry_key


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


@dataclass(frozen=True)
class Policy:
    """What one decision needs: the lot, the config's ``[policy]`` section as it is (read directly, no
    copy of its values), the reads' confidence floor (``vision.min_confidence``) and the operator's
    current override (runtime state, not config); the confusion table and the allow/deny sets are
    derived from the section once. ``untrusted_time`` is ``clock.untrusted_time`` (what the booking
    windows do while the wall clock is behind the sanity floor: ``edge.clock``)."""

    lot_id: str
    config: PolicyConfig = PolicyConfig()
    min_confidence: float = 0.5
    override: Override = Override.NONE
    untrusted_time: str = "floor"
    # Entries of the store's lists in force now (``parkgate list``, signed MQTT commands), already in the
    # form decisions compare (edge.identity.list_entry_key); added to the config's lists.
    listed_allow: frozenset[str] = frozenset()
    listed_deny: frozenset[str] = frozenset()

    @cached_property
    def confusions(self) -> ConfusionTable:
        pairs = [(c.a, c.b, c.cost) for c in self.config.confusions]
        return ConfusionTable.from_pairs(pairs) if pairs else DEFAULT_TABLE

    @cached_property
    def anti_passback(self) -> AntiPassback:
        return AntiPassback(self.config.anti_passback)

    @cached_property
    def allow(self) -> frozenset[str]:
        return frozenset(map(list_entry_key, self.config.allow_list)) | self.listed_allow

    @cached_property
    def deny(self) -> frozenset[str]:
        return frozenset(map(list_entry_key, self.config.deny_list)) | self.listed_deny

    def with_listed(self, allow: Iterable[str], deny: Iterable[str]) -> Policy:
        """This policy with the store's list entries in force now in place of the previous ones."""
        return replace(self, listed_allow=frozenset(allow), listed_deny=frozenset(deny))


def policy_from_config(cfg: Config, override: Override = Override.NONE) -> Policy:
    """The access policy of the validated config plus the operator's current override."""
    return Policy(cfg.gateway.lot_id, cfg.policy, cfg.vision.min_confidence, override,
                  cfg.clock.untrusted_time)
