"""Pure decisions of the chain sync (functional core; no I/O, no clock, no randomness of its own).

Down direction: which block windows to fetch, which blocks are confirmed, where a reorg forked, and
how one contract log changes a cached rental event or booking. Up direction: which outbox rows become
which gate records, EIP-1559 fees under a cap, the replacement bump, and retry backoff with jitter.
The imperative shell (:mod:`edge.chain.sync`) feeds these with data read from the node and the store.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from eth_abi import encode as abi_encode
from eth_utils import keccak
from web3 import Web3

from edge.chain.blocks import plan_windows as plan_windows  # re-exported: its old home
from edge.chain.blocks import windows_left as windows_left  # re-exported: its old home
from edge.chain.commitment import chain_lot_code as chain_lot_code  # re-exported: its old home
from edge.chain.commitment import lot_id as chain_lot_id
from edge.chain.contract import DecodedEvent, GateRecord, RecordKind, RejectReason, record_words
from edge.store.rows import Booking, ChainBlock, GateEventRow, OutboxRow, RentalEvent

GWEI = 10**9
ZERO32 = b"\0" * 32
# Store gate-event kind -> contract record kind; kinds absent here never go on chain. The contract
# verifies the plate in the check-in record itself (one record per entry), so a 'verified' row is not
# uploaded: it is marked done as folded into the check-in that follows it.
RECORD_KINDS: Mapping[str, RecordKind] = {
    "check_in": RecordKind.CHECK_IN,
    "check_out": RecordKind.CHECK_OUT,
    "denied": RecordKind.DENIED,
}
# The contract's MAX_CLOCK_SKEW: a record stamped further ahead of the block time is rejected.
MAX_CLOCK_SKEW_S = 5 * 60
# Rejections a later attempt can turn into success: a record stamped ahead of the chain (sent again with
# a stamp inside the skew), a booking the chain did not have yet (reorg, node lagging behind the cache).
RETRYABLE_REJECTIONS = frozenset({RejectReason.BAD_TIMESTAMP.name, RejectReason.UNKNOWN_BOOKING.name})
MAX_REJECTED_RETRIES = 3
# Replacement must beat the old fees by >= 10% (geth) / 12.5% (some clients): use the larger rule.
BUMP_NUMERATOR, BUMP_DENOMINATOR = 9, 8


# -- down: windows, confirmations, reorgs ---------------------------------------------------------

def confirmed_head(head: int, confirmations: int) -> int:
    """The newest block with at least ``confirmations`` blocks on top (-1 when none is)."""
    return head - confirmations


@dataclass(frozen=True)
class Fork:
    """The chain left the stored blocks: roll back to ``ancestor`` (-1: no stored block is canonical)."""

    ancestor: int


@dataclass(frozen=True)
class NodeBehind:
    """The node lacks stored block ``missing`` (its head is below it, or it has no block there): it is
    behind this gateway, not on another branch. Roll back nothing; wait for it to catch up."""

    missing: int
    head: int


def common_ancestor(stored: Sequence[ChainBlock], head: int,
                    chain_hash: Callable[[int], str | None]) -> Fork | NodeBehind | None:
    """Walk the stored blocks newest first. ``None``: the newest is still canonical (no reorg). A block
    the chain holds with a DIFFERENT hash is orphaned; the first that matches is the common ancestor
    (:class:`Fork`). A block the node does not have (``chain_hash`` gives ``None``, or it is above
    ``head``) proves nothing about a fork: :class:`NodeBehind`."""
    newest_first = sorted(stored, key=lambda b: b.number, reverse=True)
    if newest_first and newest_first[0].number > head:
        return NodeBehind(newest_first[0].number, head)
    for index, block in enumerate(newest_first):
        found = chain_hash(block.number)
        if found is None:
            return NodeBehind(block.number, head)
        if found == block.hash:
            return None if index == 0 else Fork(block.number)
    return Fork(-1) if stored else None


def lot_bytes(gateway_lot_id: str) -> bytes:
    """The contract's ``bytes32 lotId`` of ``gateway.lot_id`` (a lot code such as ``LOT-NORD-1``)."""
    return chain_lot_id(chain_lot_code(gateway_lot_id))


def of_lot(args: Mapping[str, Any], lot: bytes) -> bool:
    """Whether a decoded log's indexed ``lotId`` is ``lot`` (every log the down direction applies has
    one; a log without it is nobody's)."""
    value = args.get("lotId")
    return isinstance(value, bytes | bytearray) and bytes(value) == lot


@dataclass(frozen=True)
class Origin:
    """Where a log came from (what the store keeps to roll it back after a reorg)."""

    block_number: int
    block_hash: str
    log_index: int
    tx_hash: str


BOOKING_STATUS_OF_EVENT: Mapping[str, str] = {
    "SecondAssociation": "checked_in",  # contract v2: verification and check-in are one record
    "CheckedOut": "checked_out",
    "Settled": "checked_out",
    "BookingCancelled": "cancelled",
    "BookingExpired": "expired",
}
DOWN_EVENTS: tuple[str, ...] = ("RentalEventCreated", "FirstAssociation", "RentalEventCancelled",
                                "RentalRequested", *BOOKING_STATUS_OF_EVENT)


def _ms(seconds: int) -> int:
    return int(seconds) * 1000


def rental_event_row(args: Mapping[str, Any], lot: str, origin: Origin) -> RentalEvent:
    return RentalEvent(
        rental_event_id=str(args["rentalId"]), space_id=str(args["spaceId"]), lot_id=lot,
        owner=Web3.to_checksum_address(args["owner"]), window_start_ms=_ms(args["start"]),
        window_end_ms=_ms(args["end"]), price_wei=int(args["pricePerHour"]), status="open",
        block_number=origin.block_number, block_hash=origin.block_hash, log_index=origin.log_index,
        tx_hash=origin.tx_hash)


def booking_row(args: Mapping[str, Any], rental: RentalEvent, origin: Origin) -> Booking:
    return Booking(
        booking_id=str(args["bookingId"]), rental_event_id=rental.rental_event_id, space_id=rental.space_id,
        lot_id=rental.lot_id, renter=Web3.to_checksum_address(args["renter"]),
        vehicle_commitment="0x" + bytes(args["vehicleCommitment"]).hex(),
        window_start_ms=_ms(args["start"]), window_end_ms=_ms(args["end"]), status="requested",
        block_number=origin.block_number, block_hash=origin.block_hash, log_index=origin.log_index,
        tx_hash=origin.tx_hash)


def moved(row: RentalEvent | Booking, status: str, origin: Origin) -> Any:
    """``row`` in a new status, as of the log at ``origin``."""
    return replace(row, status=status, block_number=origin.block_number, block_hash=origin.block_hash,
                   log_index=origin.log_index, tx_hash=origin.tx_hash)


def log_order(event: DecodedEvent) -> tuple[int, int]:
    return (event.block_number, event.log_index)


# -- up: outbox rows -> gate records ---------------------------------------------------------------

class RecordError(ValueError):
    """An outbox row cannot become a gate record (the row is poison: mark it dead)."""


def gate_record(event: GateEventRow, seq: int, latest_stamp_s: int | None = None) -> GateRecord:
    """The contract record of one gate event (its row type has checked the kind, the commitment and the
    time already), numbered ``seq``. Its timestamp is never later than ``latest_stamp_s`` (the chain's time
    plus the allowed skew): a gateway clock running ahead cannot get a record rejected."""
    kind = RECORD_KINDS.get(event.kind)
    if kind is None:
        raise RecordError(f"gate event {event.event_id}: kind {event.kind!r} is not a chain record; "
                          f"allowed: {' | '.join(RECORD_KINDS)}")
    booking = event.booking_id or "0"
    if not (booking.isdecimal() and booking.isascii() and int(booking) < 2**64):
        raise RecordError(f"gate event {event.event_id}: booking_id {booking!r}; allowed: a decimal booking "
                          "id below 2**64 or none")
    timestamp = event.occurred_at_ms // 1000
    if timestamp >= 2**40:
        raise RecordError(f"gate event {event.event_id}: occurred_at_ms {event.occurred_at_ms}; allowed: "
                          "unix ms before year 36812")
    if latest_stamp_s is not None:
        timestamp = min(timestamp, latest_stamp_s)
    commitment = ZERO32 if event.plate_commitment is None else bytes.fromhex(event.plate_commitment[2:])
    return GateRecord(seq, kind, int(booking), commitment, timestamp)


RECORD_GATE_EVENTS_SELECTOR = keccak(text="recordGateEvents(uint256[])")[:4]


def record_batch_calldata(records: Sequence[GateRecord]) -> bytes:
    """``recordGateEvents(records)`` call data, encoded directly with eth-abi (web3's generic
    contract encoder is ~10x slower for a 200-record batch)."""
    return RECORD_GATE_EVENTS_SELECTOR + abi_encode(["uint256[]"], [record_words(records)])


@dataclass(frozen=True)
class Batch:
    """Rows to send as one ``recordGateEvents`` call, rows to skip (not for chain) and poison rows."""

    rows: tuple[OutboxRow, ...]
    records: tuple[GateRecord, ...]
    skipped: tuple[OutboxRow, ...]
    poison: tuple[tuple[OutboxRow, str], ...]


def uploads(row: OutboxRow, kinds: frozenset[str]) -> bool:
    """Whether ``row`` becomes a gate record (a gate event whose kind is uploaded and the contract has
    such records); a row that is no gate event is poison, not an upload (:func:`assemble_batch`)."""
    try:
        kind = row.gate_event().kind
    except ValueError:
        return False
    return kind in kinds and kind in RECORD_KINDS


def assemble_batch(rows: Sequence[OutboxRow], kinds: frozenset[str], seqs: Mapping[int, int],
                   latest_stamp_s: int | None = None) -> Batch:
    """Split outbox rows (in sequence order) into gate records numbered by ``seqs`` (outbox id ->
    sequence number), rows whose kind is not uploaded, and rows that can never be uploaded (not a gate
    event, or one the contract cannot hold). Sequence numbers of the records strictly increase, as the
    contract requires."""
    sent: list[OutboxRow] = []
    records: list[GateRecord] = []
    skipped: list[OutboxRow] = []
    poison: list[tuple[OutboxRow, str]] = []
    for row in rows:
        try:
            event = row.gate_event()
            if not (event.kind in kinds and event.kind in RECORD_KINDS):
                skipped.append(row)
                continue
            record = gate_record(event, seqs[row.id], latest_stamp_s)
        except RecordError as exc:
            poison.append((row, f"outbox row {row.id}: {exc}"))
            continue
        except ValueError as exc:  # not a gate event: the message names the row
            poison.append((row, str(exc)))
            continue
        if records and record.seq <= records[-1].seq:
            raise ValueError(f"outbox row {row.id}: sequence {record.seq} after {records[-1].seq}; rows must "
                             "come in sequence order")
        sent.append(row)
        records.append(record)
    return Batch(tuple(sent), tuple(records), tuple(skipped), tuple(poison))


# -- up: what became of each record ----------------------------------------------------------------

APPLIED, REJECTED, SKIPPED = "applied", "rejected", "skipped"


@dataclass(frozen=True)
class RecordOutcome:
    """What the contract did with one record of a mined batch: ``applied``, ``rejected`` (``reason``:
    the RejectReason name) or ``skipped`` (its number was at or below the high-water mark: it landed
    in an earlier transaction, or another device signs with this key)."""

    state: str
    reason: str = ""


def record_outcomes(gateway: str, seqs: Sequence[int],
                    events: Sequence[DecodedEvent]) -> dict[int, RecordOutcome]:
    """The outcome of each record ``seq`` of a batch sent by ``gateway``, read from the receipt's logs."""
    mine = Web3.to_checksum_address(gateway)
    rejected: dict[int, str] = {}
    skipped: set[int] = set()
    for event in events:
        if event.name not in ("GateRecordRejected", "GateRecordSkipped"):
            continue
        if Web3.to_checksum_address(event.args["gateway"]) != mine:
            continue
        seq = int(event.args["seq"])
        if event.name == "GateRecordSkipped":
            skipped.add(seq)
        else:
            rejected[seq] = _reason_name(event.args["reason"])
    return {seq: RecordOutcome(SKIPPED) if seq in skipped else
            RecordOutcome(REJECTED, rejected[seq]) if seq in rejected else RecordOutcome(APPLIED)
            for seq in seqs}


def _reason_name(value: Any) -> str:
    try:
        return RejectReason(int(value)).name
    except ValueError:
        return f"reason {value}"


def may_have_landed(status: str, sibling_mined: bool, mined_per_node: bool, waited_ms: int,
                    grace_ms: int) -> bool:
    """Whether a transaction of ours that carried a record number, and whose receipt the node does not
    serve, may still be the one that landed it (then wait; never renumber). Known not to: it was
    replaced (``status``) or another transaction of ours with its nonce was mined (``sibling_mined``).
    The node saying it is mined (``mined_per_node``) means wait however long. Otherwise it is taken as
    dropped once it has been waited for ``grace_ms``: its number was spent by another signer."""
    if status == "replaced" or sibling_mined:
        return False
    return mined_per_node or waited_ms < grace_ms


def tx_age_ms(now_ms: int, sent_at_ms: int, monotonic_age_ms: int | None) -> int:
    """How long a transaction has waited: on the wall clock (never below 0: a stamp in the future is a
    clock that stepped back) or, for one this process sent, on the monotonic clock, whichever is more."""
    return max(now_ms - sent_at_ms, monotonic_age_ms or 0, 0)


def retry_rejected(reason: str, attempts: int) -> bool:
    """Whether a rejected record is sent again (with a new number): only when retrying can succeed."""
    return reason in RETRYABLE_REJECTIONS and attempts <= MAX_REJECTED_RETRIES


def latest_stamp(chain_time_s: int) -> int:
    """The latest timestamp a record may carry when sent now (the contract allows MAX_CLOCK_SKEW_S ahead of
    the block time; the block that mines it is never earlier than ``chain_time_s``)."""
    return chain_time_s + MAX_CLOCK_SKEW_S


def backlog_cost_wei(records: int, gas_per_record: int, max_fee_wei: int, batch_size: int) -> int:
    """What uploading ``records`` costs at most: per-record gas plus one transaction base per batch."""
    batches = -(-records // max(batch_size, 1))
    return (records * gas_per_record + batches * 21_000) * max_fee_wei


# -- up: fees, replacement, backoff ----------------------------------------------------------------

@dataclass(frozen=True)
class Fees:
    max_fee: int
    priority_fee: int


def initial_fees(base_fee: int, priority_fee: int, cap: int) -> Fees:
    """EIP-1559 fees: tip ``priority_fee``, max fee 2 x base + tip (room for 6 full blocks of base
    fee growth), both never above ``cap``."""
    tip = min(priority_fee, cap)
    return Fees(max_fee=min(2 * base_fee + tip, cap), priority_fee=tip)


def bumped_fees(old: Fees, base_fee: int, priority_fee: int, cap: int) -> Fees | None:
    """Fees for a same-nonce replacement: both fields at least +12.5% over ``old`` (nodes demand
    >= 10%), and at least what a fresh transaction would pay. ``None`` when the cap forbids a bump."""
    fresh = initial_fees(base_fee, priority_fee, cap)
    tip = max(fresh.priority_fee, math.ceil(old.priority_fee * BUMP_NUMERATOR / BUMP_DENOMINATOR))
    max_fee = max(fresh.max_fee, math.ceil(old.max_fee * BUMP_NUMERATOR / BUMP_DENOMINATOR), tip)
    if max_fee > cap or tip > cap:
        return None
    return Fees(max_fee=max_fee, priority_fee=tip)


def backoff_delay(failures: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Capped exponential backoff with "equal jitter": half the step fixed, half random, so retries
    of many gateways spread out but never hammer at zero delay."""
    step: float = min(cap_s, base_s * 2 ** max(failures - 1, 0))
    return step / 2 + rng.uniform(0, step / 2)


def gwei(value: float) -> int:
    return int(round(value * GWEI))
