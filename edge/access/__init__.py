"""Access decisions in pure code: plates, policy, parking sessions and the decision itself.

Public surface: :func:`decide`, :func:`committed_candidates`, :class:`Policy`,
:func:`policy_from_config`, the data types in :mod:`edge.access.types` and the presence functions
in :mod:`edge.access.sessions`.
"""

from edge.access.decide import commitment_function, committed_candidates, decide
from edge.access.policy import AntiPassback, Override, Policy, policy_from_config
from edge.access.sessions import CompletedSession, Presence, Session, apply_pass
from edge.access.types import (
    BookingStatus,
    BookingView,
    Decision,
    Direction,
    Evidence,
    Flag,
    Reason,
)
from edge.vision.types import PlateRead

__all__ = [
    "AntiPassback", "BookingStatus", "BookingView", "CompletedSession", "Decision", "Direction", "Evidence",
    "Flag", "Override", "PlateRead", "Policy", "Presence", "Reason", "Session", "apply_pass",
    "commitment_function", "committed_candidates", "decide", "policy_from_config",
]
