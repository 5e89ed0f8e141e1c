"""Typed rows of the store, validated on construction.

Validation here gives a clear message naming the field, the bad value and what is allowed; the
schema's CHECK constraints are the last line of defence behind it.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, fields
from typing import Any

from edge.store.schema import (
    ACCESS_LISTS,
    BOOKING_STATUSES,
    DIRECTIONS,
    GATE_EVENT_KINDS,
    MANUAL_ACTIONS,
    MANUAL_SOURCES,
    RENTAL_EVENT_STATUSES,
)

_HEX32 = re.compile(r"0x[0-9a-f]{64}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_event_id(now_ms: int | None = None) -> str:
    """A ULID (26 chars, Crockford base32): time-ordered, unique without coordination."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def _fail(row: object, name: str, value: object, allowed: str) -> None:
    raise ValueError(f"{type(row).__name__}.{name}: bad value {value!r}; allowed: {allowed}")


def _check_choice(row: object, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(row, name)
    if value not in choices:
        _fail(row, name, value, " | ".join(choices))


def _check_hex32(row: object, name: str, optional: bool = False) -> None:
    value = getattr(row, name)
    if optional and value is None:
        return
    if not isinstance(value, str) or not _HEX32.fullmatch(value):
        _fail(row, name, value, "0x followed by 64 lowercase hex digits (bytes32)")


def _check_text(row: object, name: str) -> None:
    value = getattr(row, name)
    if not isinstance(value, str) or not value:
        _fail(row, name, value, "a non-empty string")


def _check_window(row: Any) -> None:
    if not (isinstance(row.window_start_ms, int) and isinstance(row.window_end_ms, int)
            and row.window_end_ms > row.window_start_ms):
        _fail(row, "window_end_ms", (row.window_start_ms, row.window_end_ms),
              "integer unix ms with window_end_ms > window_start_ms")


def _check_origin(row: Any) -> None:
    if not isinstance(row.block_number, int) or row.block_number < 0:
        _fail(row, "block_number", row.block_number, "an integer >= 0")
    _check_hex32(row, "block_hash")
    if not isinstance(row.log_index, int) or row.log_index < 0:
        _fail(row, "log_index", row.log_index, "an integer >= 0")


def _check_address(row: object, name: str) -> None:
    value = getattr(row, name)
    if not isinstance(value, str) or not _ADDRESS.fullmatch(value):
        _fail(row, name, value, "an Ethereum address: 0x followed by 40 hex digits")


def as_dict(row: object) -> dict[str, Any]:
    """The row's fields as a plain dict (column name -> value)."""
    return {f.name: getattr(row, f.name) for f in fields(row)}  # type: ignore[arg-type]


@dataclass(frozen=True)
class Lot:
    lot_id: str
    name: str = ""
    geohash: str = ""
    capacity: int | None = None

    def __post_init__(self) -> None:
        _check_text(self, "lot_id")
        if self.capacity is not None and (not isinstance(self.capacity, int) or self.capacity < 0):
            _fail(self, "capacity", self.capacity, "an integer >= 0 or None")


@dataclass(frozen=True)
class Space:
    """A parking space and where it is; address info only, never personal data."""

    space_id: str
    lot_id: str
    level: str = ""
    bay: str = ""
    geohash: str = ""

    def __post_init__(self) -> None:
        _check_text(self, "space_id")
        _check_text(self, "lot_id")


@dataclass(frozen=True)
class RentalEvent:
    """First association: an owner offers a space for a time window (as last seen on chain)."""

    rental_event_id: str
    space_id: str
    lot_id: str
    owner: str
    window_start_ms: int
    window_end_ms: int
    price_wei: int
    status: str
    block_number: int
    block_hash: str
    log_index: int
    tx_hash: str = ""

    def __post_init__(self) -> None:
        for name in ("rental_event_id", "space_id", "lot_id"):
            _check_text(self, name)
        _check_address(self, "owner")
        _check_window(self)
        if not isinstance(self.price_wei, int) or not 0 <= self.price_wei < 2**256:
            _fail(self, "price_wei", self.price_wei, "an integer in [0, 2**256)")
        _check_choice(self, "status", RENTAL_EVENT_STATUSES)
        _check_origin(self)


@dataclass(frozen=True)
class Booking:
    """Second association: a renter's request for a rental event, bound to a vehicle commitment."""

    booking_id: str
    rental_event_id: str
    space_id: str
    lot_id: str
    renter: str
    vehicle_commitment: str
    window_start_ms: int
    window_end_ms: int
    status: str
    block_number: int
    block_hash: str
    log_index: int
    tx_hash: str = ""

    def __post_init__(self) -> None:
        for name in ("booking_id", "rental_event_id", "space_id", "lot_id"):
            _check_text(self, name)
        _check_address(self, "renter")
        _check_hex32(self, "vehicle_commitment")
        _check_window(self)
        _check_choice(self, "status", BOOKING_STATUSES)
        _check_origin(self)


@dataclass(frozen=True)
class GateEventRow:
    """Something that happened at a gate. ``recorded_at_ms`` is set by the store when read back."""

    event_id: str
    lane: str
    direction: str
    kind: str
    reason: str
    occurred_at_ms: int
    booking_id: str | None = None
    plate_commitment: str | None = None
    plate_masked: str | None = None
    confidence: float | None = None
    evidence_path: str | None = None
    evidence_sha256: str | None = None
    recorded_at_ms: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.event_id, str) or not 8 <= len(self.event_id) <= 64:
            _fail(self, "event_id", self.event_id, "a string of 8..64 characters (use new_event_id())")
        _check_text(self, "lane")
        _check_text(self, "reason")
        _check_choice(self, "direction", DIRECTIONS)
        _check_choice(self, "kind", GATE_EVENT_KINDS)
        _check_hex32(self, "plate_commitment", optional=True)
        if self.booking_id is not None and not isinstance(self.booking_id, str):
            _fail(self, "booking_id", self.booking_id, "the booking id as text, or None")
        if self.confidence is not None and not (isinstance(self.confidence, int | float)
                                                and 0.0 <= self.confidence <= 1.0):
            _fail(self, "confidence", self.confidence, "a number in [0, 1] or None")
        if self.evidence_sha256 is not None and not _SHA256.fullmatch(str(self.evidence_sha256)):
            _fail(self, "evidence_sha256", self.evidence_sha256, "64 lowercase hex digits or None")
        if not isinstance(self.occurred_at_ms, int) or self.occurred_at_ms < 0:
            _fail(self, "occurred_at_ms", self.occurred_at_ms, "an integer unix time in ms >= 0")


@dataclass(frozen=True)
class OutboxAction:
    """What an operator did to an outbox row (`parkgate store outbox drop|retry`), kept with the row:
    when (the best time, unix ms), ``drop`` or ``retry``, who ("retried by alice (user root)") and the
    row's state and error before ("rejected: BOOKING_NOT_ACTIVE (tx 0x...)")."""

    at_ms: int
    action: str
    who: str
    was: str


@dataclass(frozen=True)
class OutboxRow:
    """One delivery of one event to one destination. ``payload`` is the decoded JSON; ``operator_actions``
    what operators did to it, oldest first."""

    id: int
    destination: str
    event_id: str
    payload: dict[str, Any]
    created_at_ms: int
    status: str
    attempts: int
    sent_ref: str | None
    ack_ref: str | None
    last_error: str | None
    operator_actions: tuple[OutboxAction, ...] = ()

    def gate_event(self) -> GateEventRow:
        """The gate event this row delivers, as the store wrote it (``payload`` holds its fields); a
        ValueError naming the row and the field when the payload is not one (edited by hand, or written
        by another version)."""
        try:
            return GateEventRow(**self.payload)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"outbox row {self.id}: not a gate event: {exc}") from None


@dataclass(frozen=True)
class Checkpoint:
    name: str
    block_number: int
    block_hash: str
    updated_at_ms: int


@dataclass(frozen=True)
class ChainBlock:
    number: int
    hash: str
    parent_hash: str


@dataclass(frozen=True)
class ManualActionRow:
    """An operator's gate operation, audited: who (``operator``: user, uid and pid from the control
    socket's peer credentials, or the signed MQTT command's nonce), why, the result, and what the lane's
    camera read at that moment with its evidence (local only: the plate is kept masked)."""

    at_ms: int
    lane: str
    action: str
    source: str
    operator: str
    reason: str
    result: str
    plate_masked: str | None = None
    confidence: float | None = None
    evidence_path: str | None = None
    evidence_sha256: str | None = None

    def __post_init__(self) -> None:
        for name in ("lane", "operator", "reason", "result"):
            _check_text(self, name)
        _check_choice(self, "action", MANUAL_ACTIONS)
        _check_choice(self, "source", MANUAL_SOURCES)
        if self.confidence is not None and not 0.0 <= self.confidence <= 1.0:
            _fail(self, "confidence", self.confidence, "a number in [0, 1] or None")
        if self.evidence_sha256 is not None and not _SHA256.fullmatch(str(self.evidence_sha256)):
            _fail(self, "evidence_sha256", self.evidence_sha256, "64 lowercase hex digits or None")


# A list entry's bounds lie from LIST_TIMES[0] up to LIST_TIMES[1] (UTC), so that every page and command can
# show them (a year 9999 bound made the console's list page a 500); each input checks with list_time_problem.
LIST_TIMES = ("2000-01-01", "2100-01-01")
LIST_MS = (946_684_800_000, 4_102_444_800_000)  # the same, unix ms


def list_time_problem(ms: int | None) -> str | None:
    """What is wrong with ``ms`` as a list entry's bound (None: no bound, fine), or None."""
    if ms is None or LIST_MS[0] <= ms < LIST_MS[1]:
        return None
    return f"is out of range; allowed: a time from {LIST_TIMES[0]} up to {LIST_TIMES[1]} (UTC)"


@dataclass(frozen=True)
class ListEntry:
    """An allow or deny list entry held in the store, optionally valid only from/until a time (unix ms;
    None: no bound). ``entry`` is already in the form decisions compare (edge.identity.list_entry_key)."""

    list_name: str
    entry: str
    valid_from_ms: int | None = None
    valid_until_ms: int | None = None
    note: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        _check_choice(self, "list_name", ACCESS_LISTS)
        _check_text(self, "entry")
        for name in ("valid_from_ms", "valid_until_ms"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                _fail(self, name, value, "None or integer unix ms >= 0")
        if (self.valid_from_ms is not None and self.valid_until_ms is not None
                and self.valid_until_ms <= self.valid_from_ms):
            _fail(self, "valid_until_ms", (self.valid_from_ms, self.valid_until_ms),
                  "a time after valid_from_ms")

    def valid_at(self, at_ms: int) -> bool:
        return ((self.valid_from_ms is None or self.valid_from_ms <= at_ms)
                and (self.valid_until_ms is None or at_ms < self.valid_until_ms))

    def state_at(self, at_ms: int) -> str:
        """``active``, ``future`` (not valid yet) or ``expired`` at ``at_ms``, as list displays show it."""
        if self.valid_at(at_ms):
            return "active"
        return "future" if self.valid_from_ms is not None and at_ms < self.valid_from_ms else "expired"
