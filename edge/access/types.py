"""Plain data shared by the access decision, the parking-session bookkeeping and the lanes.

Everything here is immutable and free of I/O so that decisions can be replayed and tested from
recorded inputs. Plates appear in clear text only in local evidence (the gate-event record kept on
the device); bookings and sessions are keyed by *vehicle commitments* (bytes32 hex), never by plates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Direction(StrEnum):
    """Which way a lane lets vehicles through."""

    ENTRY = "entry"
    EXIT = "exit"


class BookingStatus(StrEnum):
    """Lifecycle of a booking as cached by the store (same strings as ``edge.store`` BOOKING_STATUSES).

    REQUESTED: the renter requested the space with a vehicle commitment; the gateway has not seen the
    vehicle yet (its first plate match at the gate is the verification). VERIFIED: the gateway
    matched the plate (second association). CHECKED_IN / CHECKED_OUT: the vehicle is inside / has
    left. CANCELLED and EXPIRED bookings never open an entry.
    """

    REQUESTED = "requested"
    VERIFIED = "verified"
    CHECKED_IN = "checked_in"
    CHECKED_OUT = "checked_out"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


ENTRY_STATUSES = frozenset({BookingStatus.REQUESTED, BookingStatus.VERIFIED, BookingStatus.CHECKED_IN})
# Leaving is never refused for the booking's state alone: only a cancelled booking identifies nobody.
EXIT_STATUSES = ENTRY_STATUSES | {BookingStatus.CHECKED_OUT, BookingStatus.EXPIRED}


class Reason(StrEnum):
    """Why a decision came out the way it did; stable strings, safe to store and publish."""

    MANUAL_OPEN = "manual_open"
    MANUAL_CLOSED = "manual_closed"
    NO_READ = "no_read"
    LOW_CONFIDENCE = "low_confidence"
    DENY_LISTED = "deny_listed"
    ALLOW_LISTED = "allow_listed"
    BOOKING_VALID = "booking_valid"
    NO_BOOKING = "no_booking"
    WRONG_LOT = "wrong_lot"
    BOOKING_INACTIVE = "booking_inactive"
    TOO_EARLY = "too_early"
    EXPIRED = "expired"
    AMBIGUOUS_MATCH = "ambiguous_match"
    ANTI_PASSBACK = "anti_passback"
    CAPACITY_FULL = "capacity_full"
    SESSION_EXIT = "session_exit"
    EXIT_OPEN = "exit_open"  # an exit lane with exit_policy = "open" lets everyone out


class Flag(StrEnum):
    """Things worth an operator's attention on an *allowed* decision."""

    PASSBACK_VIOLATION = "passback_violation"
    OVERSTAY = "overstay"
    FUZZY_MATCH = "fuzzy_match"
    STALE_SESSION = "stale_session"  # still "inside" under an earlier booking: its exit was missed


@dataclass(frozen=True, slots=True)
class BookingView:
    """The part of a cached booking the gate needs. Times are Unix epoch milliseconds."""

    booking_id: str
    lot_id: str
    commitment: str
    window_start_ms: int
    window_end_ms: int
    status: BookingStatus
    space: str = ""


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the decision was based on (local only: contains the plate); the pass keeps the snapshot."""

    plate: str
    confidence: float
    char_confidences: tuple[float, ...]
    candidates_tried: int


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of :func:`edge.access.decide.decide`.

    ``commitment`` identifies the vehicle for parking sessions (the booking's commitment, or the
    commitment of the matched plate); ``distance`` is the weighted OCR-confusion distance between
    the read and ``matched_plate`` (0.0 for an exact match).
    """

    allow: bool
    reason: Reason
    evidence: Evidence | None
    booking_id: str | None = None
    matched_plate: str | None = None
    commitment: str | None = None
    distance: float = 0.0
    flags: tuple[Flag, ...] = field(default=())
