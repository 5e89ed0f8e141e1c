"""Contract reverts in words: one sentence per custom error of ParkgateRental, naming what to change.

``explain(revert)`` turns ``ContractRevert("InvalidWindow", (start, end))`` into a sentence a person
can act on; with the chain time (and the rental event's window) as context, a window error says
exactly which bound is wrong (edge.chain.windows). Every error of the contract's ABI has an entry
(tests/contracts/test_lot_cli.py checks the table against the artifact).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from edge.chain.contract import ChainBookingStatus, ContractRevert
from edge.chain.windows import (
    CANCEL_CUTOFF_S,
    GRACE_PERIOD_S,
    MIN_BOOKING_S,
    booking_window_problem,
    rental_window_problem,
    too_far_ahead_problem,
    utc,
)

MAX_SENTENCE_CHARS = 400


@dataclass(frozen=True)
class RevertContext:
    """What the caller knows about the call that reverted: chain time, and the rental event's window
    when the call was a booking."""

    now: int | None = None
    rental_window: tuple[int, int] | None = None


def _status(value: object) -> str:
    try:
        return ChainBookingStatus(int(value)).name.lower().replace("_", " ")  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return f"status {value}"


def _lot(value: object) -> str:
    raw = bytes(value) if isinstance(value, bytes | bytearray) else b""
    return raw.rstrip(b"\0").decode("ascii", "replace") or repr(value)


def _role(value: object) -> str:
    """A role id's first 4 bytes in hex. Only real bytes are converted: ``bytes(n)`` of an integer from
    a node would allocate n zero bytes (a 2**34 argument took a test process to 24 GB)."""
    return bytes(value[:4]).hex() if isinstance(value, bytes | bytearray) else "?"


def _invalid_window(args: tuple, ctx: RevertContext) -> str:
    start, end = int(args[0]), int(args[1])
    if ctx.now is not None:
        problem = (booking_window_problem(start, end, ctx.now, *ctx.rental_window) if ctx.rental_window
                   else rental_window_problem(start, end, ctx.now))
        if problem:
            return problem
    return (f"the window {utc(start)} - {utc(end)} is not allowed: it must end after it starts, not start "
            "in the past (rental event) or end in the past and lie inside the rental event (booking)")


Sentence = Callable[[tuple, RevertContext], str]

SENTENCES: dict[str, Sentence] = {
    "NotVerifiedOwner": lambda a, c: f"account {a[0]} is not a verified owner (never verified, or revoked): "
    "spaces, listings and bookings need a verified owner; the lot operator runs `parkgate lot owner verify`",
    "UnknownLot": lambda a, c: f"lot {_lot(a[0])} is not registered on this contract: run "
    "`parkgate lot register` first or check --lot",
    "LotExists": lambda a, c: f"lot {_lot(a[0])} is already registered: choose another lot code",
    "SpaceExists": lambda a, c: f"location {a[1]!r} of lot {_lot(a[0])} is already registered as space "
    f"{a[2]}: a bay is registered once; see `parkgate lot spaces`",
    "TooFarAhead": lambda a, c: too_far_ahead_problem(int(a[0]), int(a[1])) or f"the booking starts "
    f"{utc(int(a[0]))}, after the latest start allowed ({utc(int(a[1]))}): choose a start nearer now",
    "UnknownSpace": lambda a, c: f"space {a[0]} does not exist: see `parkgate lot spaces` for the ids",
    "SpaceNotApproved": lambda a, c: f"space {a[0]} is not approved by the lot (not yet, or removed): a lot "
    "admin runs `parkgate lot space approve --space N` once the bay is shown to be the owner's",
    "NotSpaceOwner": lambda a, c: f"space {a[0]} belongs to another owner than {a[1]}: "
    "use that owner's keystore",
    "UnknownRentalEvent": lambda a, c: f"rental event {a[0]} does not exist: see `parkgate lot rentals`",
    "NotRentalOwner": lambda a, c: f"rental event {a[0]} belongs to another owner than {a[1]}: use that "
    "owner's keystore",
    "RentalEventCancelledAlready": lambda a, c: f"rental event {a[0]} is cancelled: choose another one",
    "InvalidWindow": _invalid_window,
    "BookingTooShort": lambda a, c: f"the booking is {int(a[0]) // 60} minutes long; the shortest booking is "
    f"{int(a[1]) // 60} minutes: choose a longer window",
    "OverlappingRentalEvent": lambda a, c: f"space {a[0]} already has rental event {a[1]} overlapping this "
    "window: choose a window after it or cancel it",
    "OverlappingBooking": lambda a, c: f"rental event {a[0]} is already booked in this window "
    f"(booking {a[1]}): choose another window",
    "TooManyLive": lambda a, c: f"{a[0]} has the most live entries the contract allows (32): wait until some "
    "end or cancel some",
    "TooManyBookingsOfRenter": lambda a, c: f"account {a[1]} already holds the most live bookings (4) "
    f"in rental event {a[0]}: wait until one ends or cancel one",
    "ZeroPrice": lambda a, c: "the price per hour is 0: give a price above 0 wei",
    "EmptyCommitment": lambda a, c: "the vehicle commitment is empty: get one from the lot's booking service",
    "WrongPayment": lambda a, c: f"the payment is {a[1]} wei but the booking costs exactly {a[0]} wei: "
    "pay the quoted amount",
    "ValueTooLarge": lambda a, c: f"the value {a[0]} is too large (at most 2**96 - 1 wei)",
    "UnknownBooking": lambda a, c: f"booking {a[0]} does not exist: see `parkgate lot bookings`",
    "NotRenter": lambda a, c: f"booking {a[0]} belongs to another renter than {a[1]}: "
    "use the renter's account",
    "BookingNotActive": lambda a, c: f"booking {a[0]} is {_status(a[1])}, and this step needs another state: "
    "see `parkgate lot bookings` for its state",
    "AlreadySettled": lambda a, c: f"booking {a[0]} is already settled: nothing to do",
    "TooLateToCancel": lambda a, c: f"booking {a[0]} can no longer be cancelled: from "
    f"{CANCEL_CUTOFF_S // 60} minutes before its start (the gate admits from {GRACE_PERIOD_S // 60} "
    "minutes before, and learns of a cancellation only minutes later) the booking runs its course",
    "NotYetExpired": lambda a, c: f"booking {a[0]} can only be expired or settled as overdue after "
    f"{utc(int(a[1]))}: try again then",
    "HasCheckedInBooking": lambda a, c: f"rental event {a[0]} has a car checked in (booking {a[1]}): wait "
    "until it checks out",
    "NotAGateway": lambda a, c: f"account {a[0]} is not a gateway of any lot: run `parkgate lot gateway add`",
    "MalformedRecords": lambda a, c: f"the gate records have {a[0]} words; they come in pairs",
    "NothingToWithdraw": lambda a, c: f"account {a[0]} has nothing to withdraw",
    "EmptyString": lambda a, c: "a text field (geohash or location) is empty: give a value",
    "AccessControlUnauthorizedAccount": lambda a, c: f"account {a[0]} lacks the contract role this needs "
    f"(0x{_role(a[1])}...): use the admin's keystore or grant the role",
    "ReentrancyGuardReentrantCall": lambda a, c: "the contract refused a re-entrant call",
    "AccessControlBadConfirmation": lambda a, c: "an account can only renounce its own role",
    "InsufficientBalance": lambda a, c: f"the contract holds {a[0]} wei, too little to pay {a[1]} wei",
    "FailedCall": lambda a, c: "the payment to the receiving account failed: it must accept ether",
    "Error": lambda a, c: f"the contract refused: {a[0] if a else 'no reason given'}",
    "Panic": lambda a, c: f"the contract hit an internal error (panic code {a[0] if a else '?'})",
}


def explain(revert: ContractRevert, context: RevertContext | None = None) -> str:
    """One sentence for ``revert``; an error without an entry (or with undecodable arguments) is named
    as it is, with its raw data."""
    sentence = SENTENCES.get(revert.error)
    text = None
    if sentence is not None:
        with contextlib.suppress(IndexError, TypeError, ValueError, OverflowError):
            text = sentence(revert.args_, context or RevertContext())
    if text is None:
        text = f"the contract refused with {revert.error}{revert.args_!r} (raw {revert.raw[:74]})"
    # One line, bounded: a revert reason string comes from the node and may hold anything.
    return " ".join(text.split())[:MAX_SENTENCE_CHARS]


__all__ = ["MIN_BOOKING_S", "SENTENCES", "RevertContext", "explain"]
