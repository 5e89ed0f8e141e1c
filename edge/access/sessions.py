"""Parking sessions: who is inside, entry/exit pairing, occupancy for the capacity inhibit.

Pure functions over :class:`Presence`, a small immutable state. The daemon applies a pass to it
*after* the lane records that the vehicle went through (not when the decision is made), and persists
it through the store as the JSON-ready dict of :func:`presence_to_dict`:

    {"version": 1,
     "inside": {"<commitment>": {"booking_id": str|null, "entered_ms": int, "entry_lane": str,
                                  "flags": [str, ...]}, ...},
     "anonymous": int}

``anonymous`` counts vehicles let in without an identity (manual opens) so occupancy stays right.
No plates are kept: sessions are keyed by vehicle commitment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from edge.access.types import Decision, Direction, Flag

PRESENCE_VERSION = 1


@dataclass(frozen=True, slots=True)
class Session:
    """A vehicle inside the lot."""

    commitment: str
    booking_id: str | None
    entered_ms: int
    entry_lane: str
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CompletedSession:
    """An entry paired with its exit: what settlement and reporting need."""

    commitment: str
    booking_id: str | None
    entered_ms: int
    exited_ms: int
    entry_lane: str
    exit_lane: str
    flags: tuple[str, ...] = ()

    @property
    def duration_ms(self) -> int:
        return self.exited_ms - self.entered_ms


@dataclass(frozen=True, slots=True)
class Presence:
    inside: Mapping[str, Session] = field(default_factory=dict)
    anonymous: int = 0

    @property
    def occupancy(self) -> int:
        return len(self.inside) + self.anonymous

    def is_inside(self, commitment: str | None) -> bool:
        return commitment is not None and commitment in self.inside


def enter(presence: Presence, decision: Decision, now_ms: int, lane_id: str) -> Presence:
    """A vehicle passed an entry lane. A second entry of the same vehicle (soft anti-passback)
    replaces its session, keeping the flag, so occupancy is not counted twice."""
    if decision.commitment is None:
        return replace(presence, anonymous=presence.anonymous + 1)
    session = Session(decision.commitment, decision.booking_id, now_ms, lane_id, tuple(decision.flags))
    return replace(presence, inside={**presence.inside, decision.commitment: session})


def leave(presence: Presence, decision: Decision, now_ms: int,
          lane_id: str) -> tuple[Presence, CompletedSession | None]:
    """A vehicle passed an exit lane; returns the paired session when there was one.

    An unknown vehicle leaving most likely came in anonymously (manual open), so it decrements the
    anonymous count when that is positive.
    """
    session = presence.inside.get(decision.commitment) if decision.commitment else None
    if session is None:
        return replace(presence, anonymous=max(0, presence.anonymous - 1)), None
    inside = {k: v for k, v in presence.inside.items() if k != decision.commitment}
    done = CompletedSession(session.commitment, session.booking_id or decision.booking_id, session.entered_ms,
                            now_ms, session.entry_lane, lane_id,
                            tuple(dict.fromkeys((*session.flags, *decision.flags))))
    return replace(presence, inside=inside), done


def apply_pass(presence: Presence, decision: Decision, direction: Direction, now_ms: int,
               lane_id: str) -> tuple[Presence, CompletedSession | None]:
    """Update presence for one recorded passage through a lane."""
    if direction is Direction.ENTRY:
        return enter(presence, decision, now_ms, lane_id), None
    return leave(presence, decision, now_ms, lane_id)


def presence_to_dict(presence: Presence) -> dict[str, Any]:
    return {
        "version": PRESENCE_VERSION,
        "inside": {c: {"booking_id": s.booking_id, "entered_ms": s.entered_ms, "entry_lane": s.entry_lane,
                       "flags": list(s.flags)} for c, s in sorted(presence.inside.items())},
        "anonymous": presence.anonymous,
    }


def presence_from_dict(data: Mapping[str, Any]) -> Presence:
    """Inverse of :func:`presence_to_dict`; raises ValueError naming the bad field."""
    if data.get("version") != PRESENCE_VERSION:
        raise ValueError(f"presence state version {data.get('version')!r}; expected {PRESENCE_VERSION}")
    anonymous = data.get("anonymous", 0)
    if not isinstance(anonymous, int) or anonymous < 0:
        raise ValueError(f"presence state 'anonymous' = {anonymous!r}; expected an integer >= 0")
    inside: dict[str, Session] = {}
    for commitment, raw in dict(data.get("inside", {})).items():
        try:
            flags = tuple(str(Flag(f)) for f in raw.get("flags", ()))
            inside[commitment] = Session(commitment, raw["booking_id"], int(raw["entered_ms"]),
                                         str(raw["entry_lane"]), flags)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"presence state session {commitment!r} is malformed: {exc!r}") from None
    return Presence(inside, anonymous)
