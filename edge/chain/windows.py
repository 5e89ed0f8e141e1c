"""Rental and booking windows as the contract checks them, said in words (pure functions, no I/O).

The operator CLI and the booking service check a window against the chain's clock before they send
anything, so a person reads "the booking ends in the past" instead of ``InvalidWindow(...)``; the
contract stays the authority (its revert is explained with the same sentences, edge.chain.reverts).
The constants mirror ParkgateRental.sol.
"""

from __future__ import annotations

from datetime import UTC, datetime

MIN_BOOKING_S = 3600  # ParkgateRental.MIN_BOOKING
MAX_RENTAL_WINDOW_S = 366 * 24 * 3600  # ParkgateRental.MAX_RENTAL_WINDOW
MAX_END = 2**39  # ParkgateRental: a rental event's end must stay below 2**39
GRACE_PERIOD_S = 15 * 60  # ParkgateRental.GRACE_PERIOD: the gateway admits a booked car from start - grace
CANCEL_CUTOFF_S = 3600  # ParkgateRental.CANCEL_CUTOFF: no cancelling from start - cutoff (before admission)
MAX_ADVANCE_S = 14 * 24 * 3600  # ParkgateRental.MAX_ADVANCE: a booking starts at most this far after now
RECORD_DEADLINE_S = 24 * 3600  # ParkgateRental.RECORD_DEADLINE: expire / settle overdue after end + this


def utc(ts: int) -> str:
    """``1764615600`` -> ``"2025-12-01 19:00:00 UTC"`` (a time no calendar holds stays a number)."""
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return f"unix time {ts}"


def parse_chain_time(text: str) -> int:
    """Unix seconds from ``"1764615600"`` or an ISO 8601 time (``"2026-12-01T19:00:00Z"``; a time
    without a zone is taken as UTC). ValueError names the text and the allowed forms."""
    value = text.strip()
    if value.isascii() and value.isdigit():
        return int(value)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"time {text!r} is neither unix seconds nor ISO 8601 "
                         "(e.g. 2026-12-01T19:00:00Z)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


def rental_window_problem(start: int, end: int, now: int) -> str | None:
    """Why ``createRentalEvent(start, end)`` would revert (InvalidWindow) at chain time ``now``, or None."""
    if start >= end:
        return (f"the rental event ends ({utc(end)}) before it starts ({utc(start)}): "
                "give an end after the start")
    if start < now:
        return (f"the rental event starts in the past ({utc(start)}; chain time is {utc(now)}): "
                "give a start at or after now")
    if end - start > MAX_RENTAL_WINDOW_S:
        return (f"the rental event is {(end - start) // 86400} days long; at most 366 days are allowed: "
                "split it into shorter events")
    if end >= MAX_END:
        return f"the rental event ends too far in the future ({end}): give an end before unix time {MAX_END}"
    return None


def booking_window_problem(start: int, end: int, now: int, rental_start: int, rental_end: int) -> str | None:
    """Why ``requestRental(start, end)`` would revert (InvalidWindow, BookingTooShort or TooFarAhead) at
    chain time ``now`` for a rental event open over [rental_start, rental_end), or None."""
    if start >= end:
        return f"the booking ends ({utc(end)}) before it starts ({utc(start)}): give an end after the start"
    if end <= now:
        return (f"the booking is in the past: it ends {utc(end)} and chain time is {utc(now)}; "
                "choose a window that ends after now")
    if start < rental_start or end > rental_end:
        return (f"the booking {utc(start)} - {utc(end)} is outside the rental event's window "
                f"{utc(rental_start)} - {utc(rental_end)}: choose a window inside it")
    if end - start < MIN_BOOKING_S:
        return (f"the booking is {(end - start) // 60} minutes long; the shortest booking is "
                f"{MIN_BOOKING_S // 60} minutes")
    return too_far_ahead_problem(start, now + MAX_ADVANCE_S)


def too_far_ahead_problem(start: int, latest: int) -> str | None:
    """Why a booking starting at ``start`` would revert TooFarAhead when the latest allowed start is
    ``latest`` (chain time + MAX_ADVANCE), or None."""
    if start <= latest:
        return None
    return (f"the booking starts {utc(start)}, more than {MAX_ADVANCE_S // 86400} days ahead: book a start "
            f"at or before {utc(latest)}")
