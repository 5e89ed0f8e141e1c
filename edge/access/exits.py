"""Per-lane exit rules (pure): who may leave through an exit lane, and the lane's anti-passback.

``exit_policy`` of an exit lane:

- ``open``: everyone leaves, read or not, known or not. A refusal the lot's rules would give is
  turned into an allowed exit with reason ``exit_open`` (the read, match and flags are kept as
  evidence). Only the operator's lot-wide ``closed`` override still keeps the gate shut.
- ``known`` (the default of exit lanes): vehicles seen entering (inside), allow-listed, or holding
  a booking here may leave, also without a recorded entry (tailgater, misread at the entry, parked
  before the installation): anti-passback only flags that (``passback_violation``), it never traps.
  A vehicle nobody knows is refused (``no_booking``): let it out by hand (``parkgate gate open``).
- ``booked_only``: the strict rule: the same vehicles, but a car with no recorded entry is subject
  to the lane's anti-passback (``hard`` refuses it).

A lane's ``anti_passback`` overrides the lot's ``[policy] anti_passback`` for that lane only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from edge.access.policy import AntiPassback
from edge.access.types import Decision, Reason


class ExitPolicy(StrEnum):
    OPEN = "open"
    KNOWN = "known"
    BOOKED_ONLY = "booked_only"


DEFAULT_EXIT_POLICY = ExitPolicy.KNOWN


@dataclass(frozen=True)
class LaneRules:
    """The decision rules of one lane that are not the lot's: its exit policy and anti-passback
    (None: the lot's). The defaults reproduce the lot-wide rules (strict exits)."""

    exit_policy: ExitPolicy = ExitPolicy.BOOKED_ONLY
    anti_passback: AntiPassback | None = None

    def passback(self, lot: AntiPassback) -> AntiPassback:
        return lot if self.anti_passback is None else self.anti_passback

    def refuses_unrecorded_exit(self) -> bool:
        """Whether anti-passback may refuse a known vehicle that has no recorded entry."""
        return self.exit_policy is ExitPolicy.BOOKED_ONLY


LOT_RULES = LaneRules()  # no lane-specific rule: the lot's, strict exits (pure callers' default)


def lane_rules(direction: str, exit_policy: str | None, anti_passback: str | None) -> LaneRules:
    """A lane's rules from its config values (validated there); exits default to ``known``."""
    policy = ExitPolicy(exit_policy) if exit_policy else DEFAULT_EXIT_POLICY
    return LaneRules(policy if direction == "exit" else ExitPolicy.BOOKED_ONLY,
                     AntiPassback(anti_passback) if anti_passback else None)


def open_exit(decision: Decision, rules: LaneRules) -> Decision:
    """Under ``exit_policy = "open"``, a refused exit becomes an allowed one (reason ``exit_open``);
    the operator's lot-wide ``closed`` override stays refused."""
    if decision.allow or rules.exit_policy is not ExitPolicy.OPEN or decision.reason is Reason.MANUAL_CLOSED:
        return decision
    return replace(decision, allow=True, reason=Reason.EXIT_OPEN)
