"""Deploy the ParkgateRental contract and talk to it over JSON-RPC (web3.py 7).

``RentalClient`` is a thin typed wrapper: one method per contract function, bound to one sender. The
sender is either an address the node unlocks (anvil's dev accounts) or a ``LocalAccount`` whose key
signs locally (the gateway's keystore account). Writes return a :class:`TxResult` with the receipt,
the gas used and the decoded events; a revert raises :class:`ContractRevert` naming the Solidity
error and its arguments. The per-row views of a listing (:meth:`RentalClient.get_spaces`,
``get_rental_events``, ``get_bookings``) go to the node in JSON-RPC batches (:meth:`RentalClient.read_many`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, cast

from eth_abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from hexbytes import HexBytes
from requests.exceptions import HTTPError, RequestException
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.exceptions import BadResponseFormat, ContractLogicError, Web3Exception, Web3RPCError
from web3.types import TxParams

from edge.chain.blocks import DEFAULT_LOG_WINDOW_BLOCKS, plan_windows
from edge.chain.build import BUILD_DIR

LOG = logging.getLogger(__name__)
RENTAL_CONTRACT = "ParkgateRental"
# The rental contract's artifact ships inside this package (in the repository, edge/chain/ParkgateRental.json
# is a link to contracts/build/ParkgateRental.json, which `make contracts` writes).
PACKAGED_DIR = Path(str(resources.files(__package__ or "edge.chain")))
Sender = str | LocalAccount
# The most view calls in one JSON-RPC batch (RentalClient.read_many): hosted providers cap batch sizes
# (often at 100, some lower) and refuse larger ones.
MAX_BATCH_CALLS = 100
# HTTP answers to a batch that say "not now" (a timeout, a rate limit), not "no batches": not remembered.
TRANSIENT_HTTP = frozenset({408, 429})


class RecordKind(IntEnum):
    CHECK_IN = 0  # plate verified against the commitment and checked in: the second association
    CHECK_OUT = 1
    DENIED = 2


class ChainBookingStatus(IntEnum):
    """A booking's state as the contract stores it (uint8); the gateway's cache keeps its own lifecycle,
    ``edge.access.types.BookingStatus``, set from the contract's events."""

    NONE = 0
    REQUESTED = 1
    CHECKED_IN = 2
    CHECKED_OUT = 3
    SETTLED = 4
    CANCELLED = 5
    EXPIRED = 6


class RejectReason(IntEnum):
    NONE = 0
    UNKNOWN_BOOKING = 1
    WRONG_LOT = 2
    BAD_STATE = 3
    COMMITMENT_MISMATCH = 4
    OUTSIDE_WINDOW = 5
    BAD_TIMESTAMP = 6
    UNKNOWN_KIND = 7


# Bounds of the packed record fields (see ``GateRecord.words``).
MAX_SEQ = 2**64 - 1
MAX_BOOKING_ID = 2**64 - 1
MAX_TIMESTAMP = 2**40 - 1


@dataclass(frozen=True)
class GateRecord:
    """One gate record for ``recordGateEvents``. ``seq`` is the gateway's own record number (strictly
    increasing per gateway address): the contract skips a record at or below the gateway's high-water mark."""

    seq: int
    kind: RecordKind
    booking_id: int
    plate_commitment: bytes
    timestamp: int

    def words(self) -> tuple[int, int]:
        """The two calldata words of the record: seq | kind | booking id | timestamp, and the commitment."""
        if not (0 < self.seq <= MAX_SEQ and 0 <= self.booking_id <= MAX_BOOKING_ID
                and 0 <= self.timestamp <= MAX_TIMESTAMP and 0 <= int(self.kind) < 256
                and len(self.plate_commitment) == 32):
            raise ValueError(f"gate record out of range: {self}; allowed: 0 < seq < 2**64, "
                             "booking id < 2**64, timestamp < 2**40, a 32-byte commitment")
        head = self.seq << 192 | int(self.kind) << 184 | self.booking_id << 120 | self.timestamp << 80
        return head, int.from_bytes(self.plate_commitment, "big")


def record_words(records: Sequence[GateRecord]) -> list[int]:
    """The ``uint256[]`` argument of ``recordGateEvents`` for ``records``."""
    return [word for record in records for word in record.words()]


@dataclass(frozen=True)
class Lot:
    exists: bool
    number: int
    geohash: str


@dataclass(frozen=True)
class Space:
    lot_id: bytes
    owner: str
    approved: bool  # by a lot admin: only approved spaces are listed and booked
    location: str


@dataclass(frozen=True)
class RentalEvent:
    space_id: int
    lot_id: bytes
    owner: str
    start: int
    end: int
    cancelled: bool
    price_per_hour: int


@dataclass(frozen=True)
class Booking:
    rental_id: int
    renter: str
    start: int
    end: int
    check_in_at: int
    check_out_at: int
    status: ChainBookingStatus
    vehicle_commitment: bytes
    escrow: int


@dataclass(frozen=True)
class DecodedEvent:
    name: str
    args: dict[str, Any]
    block_number: int
    tx_hash: bytes
    log_index: int


@dataclass(frozen=True)
class TxResult:
    tx_hash: bytes
    receipt: Any
    gas_used: int
    events: list[DecodedEvent] = field(default_factory=list)
    return_value: Any = None

    def named(self, name: str) -> list[DecodedEvent]:
        return [e for e in self.events if e.name == name]

    def one(self, name: str) -> DecodedEvent:
        found = self.named(name)
        if len(found) != 1:
            names = [e.name for e in self.events]
            raise AssertionError(f"expected one {name} event, got {len(found)}: {names}")
        return found[0]


class ContractRevert(Exception):
    """A call reverted; ``error`` is the Solidity error name (or "Error"/"Panic"/"unknown")."""

    def __init__(self, error: str, args: tuple, raw: str) -> None:
        super().__init__(f"{error}{args!r}" if args else error)
        self.error = error
        self.args_ = args
        self.raw = raw


def load_artifact(name: str = RENTAL_CONTRACT, build_dir: Path | None = None) -> dict:
    """The compiled contract ``name`` from ``build_dir``; by default the rental contract from the package
    (PACKAGED_DIR, found by importlib.resources: an installed parkgate has no contracts/ folder) and any
    other contract (test helpers) from the repository's contracts/build."""
    directory = build_dir or (PACKAGED_DIR if name == RENTAL_CONTRACT else BUILD_DIR)
    path = directory / f"{name}.json"
    if not path.is_file():
        fix = ("reinstall parkgate (pip install .): the package lacks its contract artifact"
               if directory == PACKAGED_DIR else "run `make contracts` (python -m edge.chain.build)")
        raise FileNotFoundError(f"no artifact {path}: {fix}")
    return json.loads(path.read_text())


def _plain(value: Any) -> Any:
    """web3 AttributeDict/HexBytes/tuples -> plain dict/bytes/lists for easy comparison."""
    if isinstance(value, HexBytes | bytes):
        return bytes(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _decoded(name: str, data: Any) -> DecodedEvent:
    return DecodedEvent(name=name, args=_plain(dict(data["args"])), block_number=data["blockNumber"],
                        tx_hash=bytes(data["transactionHash"]), log_index=data["logIndex"])


def _error_signatures(abi: Iterable[dict]) -> dict[bytes, tuple[str, list[str]]]:
    """4-byte selector -> (error name, argument types), for every error in the ABI."""
    table: dict[bytes, tuple[str, list[str]]] = {}
    for entry in abi:
        if entry.get("type") == "error":
            types = [_abi_type(i) for i in entry["inputs"]]
            table[keccak(text=f"{entry['name']}({','.join(types)})")[:4]] = (entry["name"], types)
    table[keccak(text="Error(string)")[:4]] = ("Error", ["string"])
    table[keccak(text="Panic(uint256)")[:4]] = ("Panic", ["uint256"])
    return table


def _abi_type(param: dict) -> str:
    if param["type"].startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in param["components"]) + ")" + param["type"][5:]
    return param["type"]


def decode_revert(abi: Iterable[dict], data: str | bytes | None) -> ContractRevert:
    raw = data if isinstance(data, str) else ("0x" + bytes(data).hex() if data else "0x")
    blob = bytes(HexBytes(raw)) if raw and raw != "0x" else b""
    entry = _error_signatures(abi).get(blob[:4])
    if entry is None:
        return ContractRevert("unknown", (), raw)
    name, types = entry
    try:
        values = [Web3.to_checksum_address(v) if t == "address" else v
                  for t, v in zip(types, abi_decode(types, blob[4:]), strict=True)]
        return ContractRevert(name, tuple(_plain(values)), raw)
    except Exception:  # noqa: BLE001 - malformed revert data from the node: keep the raw bytes
        return ContractRevert(name, (), raw)


def _revert_of(abi: Iterable[dict], exc: ContractLogicError) -> ContractRevert:
    return decode_revert(abi, exc.data if isinstance(exc.data, str | bytes) else None)


class BatchRefused(Exception):
    """The node did not answer a JSON-RPC batch with one answer per call."""


def batch_refusal(exc: Exception) -> str | None:
    """Why ``exc``, raised by a batch of view calls, shows that the node refuses batches: an HTTP 4xx
    status, an answer that is not one per call, one error object for the whole batch (JSON-RPC gives it
    a null id). None when it does not: an error of one call, a rate limit, a server or network failure."""
    if isinstance(exc, HTTPError):
        answer = exc.response
        if answer is None or not 400 <= answer.status_code < 500 or answer.status_code in TRANSIENT_HTTP:
            return None
        return f"HTTP {answer.status_code} {answer.reason}"
    if isinstance(exc, BatchRefused | BadResponseFormat):
        return f"{type(exc).__name__}: {str(exc)[:200]}"
    response = exc.rpc_response if isinstance(exc, Web3RPCError) else None
    if isinstance(response, dict) and response.get("id") is None:
        return f"error {str(response.get('error'))[:200]}"
    return None


def _space(values: Sequence[Any]) -> Space:
    lot, owner, approved, location = values
    return Space(bytes(lot), owner, bool(approved), location)


def _rental_event(values: Sequence[Any]) -> RentalEvent:
    space_id, lot, owner, start, end, cancelled, price = values
    return RentalEvent(space_id, bytes(lot), owner, start, end, cancelled, price)


def _booking(values: Sequence[Any]) -> Booking:
    rental, renter, start, end, check_in, check_out, status, commitment, escrow = values
    return Booking(rental, renter, start, end, check_in, check_out, ChainBookingStatus(status),
                   bytes(commitment), escrow)


def _address_of(sender: Sender) -> str:
    return sender.address if isinstance(sender, LocalAccount) else Web3.to_checksum_address(sender)


def send(w3: Web3, fn: ContractFunction | ContractConstructor, sender: Sender, abi: Sequence[dict],
         value: int = 0, receipt_timeout: float = 120.0) -> tuple[bytes, Any]:
    """Send ``fn`` from ``sender``; returns (tx hash, receipt). Reverts raise ContractRevert."""
    params = cast(TxParams, {"from": _address_of(sender), "value": value})
    try:
        if isinstance(sender, LocalAccount):
            params["nonce"] = w3.eth.get_transaction_count(sender.address, "pending")
            signed = sender.sign_transaction(cast("dict[str, Any]", fn.build_transaction(params)))
            tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
        else:
            tx_hash = fn.transact(params)
    except ContractLogicError as exc:
        raise decode_revert(abi, exc.data if isinstance(exc.data, str | bytes) else None) from exc
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=receipt_timeout)
    if receipt["status"] != 1:
        raise ContractRevert("reverted", (), "0x" + bytes(tx_hash).hex())
    return bytes(tx_hash), receipt


def deploy_artifact(w3: Web3, name: str, sender: Sender, *ctor_args: Any) -> tuple[Contract, Any]:
    """Deploy the compiled contract ``name``; returns the contract and the deployment receipt."""
    artifact = load_artifact(name)
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    _, receipt = send(w3, factory.constructor(*ctor_args), sender, artifact["abi"])
    return w3.eth.contract(address=receipt["contractAddress"], abi=artifact["abi"]), receipt


def deploy(w3: Web3, sender: Sender, admin: str | None = None) -> RentalClient:
    """Deploy ParkgateRental with ``admin`` (default: the deployer) holding all admin roles.

    The returned client sends as ``sender``; ``client.deploy_receipt`` holds the deployment receipt.
    """
    contract, receipt = deploy_artifact(w3, RENTAL_CONTRACT, sender, admin or _address_of(sender))
    client = RentalClient(w3, contract.address, sender)
    client.deploy_receipt = receipt
    return client


class RentalClient:
    """Typed access to one deployed ParkgateRental, sending as ``sender``."""

    def __init__(self, w3: Web3, address: str, sender: Sender | None = None,
                 build_dir: Path | None = None, log_window_blocks: int = DEFAULT_LOG_WINDOW_BLOCKS) -> None:
        """``log_window_blocks``: the most blocks one eth_getLogs of :meth:`events` asks for
        (``chain.log_window_blocks``; hosted RPC providers refuse wider ranges)."""
        if log_window_blocks < 1:
            raise ValueError(f"log_window_blocks must be >= 1, got {log_window_blocks}")
        self.w3 = w3
        self.log_window_blocks = log_window_blocks
        self.abi: list[dict] = load_artifact(RENTAL_CONTRACT, build_dir)["abi"]
        self.contract: Contract = w3.eth.contract(address=Web3.to_checksum_address(address), abi=self.abi)
        self.sender = sender
        self.deploy_receipt: Any = None
        self.dropped_logs = 0
        self.batch_refusal: str | None = None  # why the node refused a batch: views go one at a time

    @property
    def address(self) -> str:
        return self.contract.address

    def with_sender(self, sender: Sender) -> RentalClient:
        client = RentalClient(self.w3, self.address, sender, log_window_blocks=self.log_window_blocks)
        client.batch_refusal = self.batch_refusal
        return client

    # ------------------------------------------------------------------ plumbing

    @cached_property
    def _events_by_topic(self) -> dict[bytes, str]:
        table = {}
        for entry in self.abi:
            if entry.get("type") == "event":
                signature = f"{entry['name']}({','.join(_abi_type(i) for i in entry['inputs'])})"
                table[keccak(text=signature)] = entry["name"]
        return table

    def decode_logs(self, logs: Iterable[Any]) -> list[DecodedEvent]:
        """Decode this contract's logs. Logs of other contracts or unknown events are ignored; a log
        that claims to be ours but does not decode (a bad RPC answer) is dropped, counted in
        ``dropped_logs`` and logged, never raised into the caller's sync loop."""
        decoded = []
        for log in logs:
            try:
                if Web3.to_checksum_address(log["address"]) != self.address or not log["topics"]:
                    continue
                name = self._events_by_topic.get(bytes(HexBytes(log["topics"][0])))
                if name is None:
                    continue
                decoded.append(_decoded(name, self.contract.events[name]().process_log(log)))
            except Exception as exc:  # noqa: BLE001 - any malformed field of an RPC answer
                self.dropped_logs += 1
                LOG.warning("dropped undecodable log from the RPC node (%s: %s)", type(exc).__name__,
                            str(exc)[:200])
        return decoded

    def _write(self, fn: ContractFunction, value: int = 0) -> TxResult:
        if self.sender is None:
            raise ValueError("this RentalClient has no sender: use with_sender(account) for writes")
        try:
            return_value = fn.call(cast(TxParams, {"from": _address_of(self.sender), "value": value}))
        except ContractLogicError as exc:
            raise _revert_of(self.abi, exc) from exc
        tx_hash, receipt = send(self.w3, fn, self.sender, self.abi, value)
        return TxResult(tx_hash=tx_hash, receipt=receipt, gas_used=receipt["gasUsed"],
                        events=self.decode_logs(receipt["logs"]), return_value=return_value)

    def _read(self, name: str, *args: Any) -> Any:
        try:
            return self.contract.functions[name](*args).call()
        except ContractLogicError as exc:
            raise _revert_of(self.abi, exc) from exc

    def read_many(self, name: str, calls: Sequence[tuple[Any, ...]]) -> list[Any]:
        """The view ``name`` called with each argument tuple of ``calls``, answers in their order (as
        :meth:`_read` answers each): in JSON-RPC batches of at most ``MAX_BATCH_CALLS`` calls, one call at
        a time once the node refused a batch (``batch_refusal``, logged once). A call that reverts raises
        the ContractRevert :meth:`_read` raises; a batch failing otherwise has its calls read one at a
        time, so whatever a single call raises is raised."""
        answers: list[Any] = []
        for first in range(0, len(calls), MAX_BATCH_CALLS):
            answers += self._read_chunk(name, calls[first:first + MAX_BATCH_CALLS])
        return answers

    def _read_chunk(self, name: str, calls: Sequence[tuple[Any, ...]]) -> list[Any]:
        if self.batch_refusal is None and len(calls) > 1:
            try:
                return self._read_batch(name, calls)
            except ContractLogicError as exc:
                raise _revert_of(self.abi, exc) from exc
            except (Web3Exception, RequestException, BatchRefused) as exc:
                self._batch_failed(exc)
        return [self._read(name, *args) for args in calls]

    def _read_batch(self, name: str, calls: Sequence[tuple[Any, ...]]) -> list[Any]:
        """One JSON-RPC batch; web3 decodes each answer as ``call()`` does and raises the first error."""
        with self.w3.batch_requests() as batch:
            for args in calls:
                batch.add(self.contract.functions[name](*args))
            answers = batch.execute()
        if len(answers) != len(calls):  # web3 pairs answers with calls and drops the unpaired ones
            raise BatchRefused(f"{len(answers)} answers to a batch of {len(calls)} calls")
        return list(answers)

    def _batch_failed(self, exc: Exception) -> None:
        why = batch_refusal(exc)
        if why is None:
            LOG.debug("a batch of view calls failed (%s: %s): reading its calls one at a time",
                      type(exc).__name__, str(exc)[:200])
            return
        first, self.batch_refusal = self.batch_refusal is None, why
        if first:  # another thread's batch may have been refused meanwhile: one line in the log
            LOG.warning("the chain node refuses JSON-RPC batches (%s): reading views one call at a time "
                        "from now on (a request per row of a listing)", why)

    def events(self, name: str, from_block: int = 0, to_block: int | str = "latest",
               lot_id: bytes | None = None) -> list[DecodedEvent]:
        """One event type's logs in ``from_block..to_block``, optionally filtered by its indexed ``lotId``:
        eth_getLogs in windows of at most ``log_window_blocks`` blocks, a tag such as "latest" resolved to
        a block number once, so every window reads the same chain."""
        filters = {"lotId": lot_id} if lot_id is not None else None
        last = self._block_number(to_block)
        found: list[DecodedEvent] = []
        for start, end in plan_windows(from_block, last, self.log_window_blocks):
            logs = self.contract.events[name].get_logs(argument_filters=filters, from_block=start,
                                                        to_block=end)
            found += [_decoded(name, e) for e in logs]
        return found

    def _block_number(self, block: int | str) -> int:
        if isinstance(block, int):
            return block
        if block == "latest":
            return int(self.w3.eth.block_number)
        return int(self.w3.eth.get_block(cast(Any, block))["number"])

    # ------------------------------------------------------------------ roles, owners, lots, spaces

    def role(self, name: str) -> bytes:
        """``DEFAULT_ADMIN_ROLE``, ``VERIFIER_ROLE`` or ``LOT_ADMIN_ROLE``."""
        return bytes(self._read(name))

    def grant_role(self, role_name: str, account: str) -> TxResult:
        return self._write(self.contract.functions.grantRole(self.role(role_name), account))

    def has_role(self, role_name: str, account: str) -> bool:
        return bool(self._read("hasRole", self.role(role_name), account))

    def verify_owner(self, owner: str, attestation: bytes) -> TxResult:
        return self._write(self.contract.functions.verifyOwner(owner, attestation))

    def revoke_owner(self, owner: str) -> TxResult:
        return self._write(self.contract.functions.revokeOwner(owner))

    def is_verified_owner(self, owner: str) -> bool:
        return bool(self._read("isVerifiedOwner", owner))

    def register_lot(self, lot_id: bytes, geohash: str) -> TxResult:
        return self._write(self.contract.functions.registerLot(lot_id, geohash))

    def set_gateway(self, lot_id: bytes, gateway: str, enabled: bool = True) -> TxResult:
        return self._write(self.contract.functions.setGateway(lot_id, gateway, enabled))

    def is_gateway(self, lot_id: bytes, gateway: str) -> bool:
        return bool(self._read("gatewayOf", lot_id, gateway))

    def register_space(self, lot_id: bytes, location: str) -> TxResult:
        return self._write(self.contract.functions.registerSpace(lot_id, location))

    def approve_space(self, space_id: int) -> TxResult:
        return self._write(self.contract.functions.approveSpace(space_id))

    def remove_space(self, space_id: int) -> TxResult:
        return self._write(self.contract.functions.removeSpace(space_id))

    def space_at(self, lot_id: bytes, location: str) -> int:
        """The id of the space registered at ``location`` in the lot, 0 when none (a location is
        registered once per lot)."""
        return int(self._read("spaceAt", lot_id, keccak(text=location)))

    def get_lot(self, lot_id: bytes) -> Lot:
        return Lot(*self._read("getLot", lot_id))

    def get_space(self, space_id: int) -> Space:
        return _space(self._read("getSpace", space_id))

    def get_spaces(self, space_ids: Sequence[int]) -> list[Space]:
        """:meth:`get_space` of each id, in order, read in batches (:meth:`read_many`)."""
        return [_space(values) for values in self.read_many("getSpace", [(i,) for i in space_ids])]

    # ------------------------------------------------------------------ rental events and bookings

    def create_rental_event(self, space_id: int, start: int, end: int, price_per_hour: int) -> TxResult:
        return self._write(self.contract.functions.createRentalEvent(space_id, start, end, price_per_hour))

    def cancel_rental_event(self, rental_id: int) -> TxResult:
        """Withdraw a listing: its owner's, or any listing when the sender is a verifier."""
        return self._write(self.contract.functions.cancelRentalEvent(rental_id))

    def get_rental_event(self, rental_id: int) -> RentalEvent:
        return _rental_event(self._read("getRentalEvent", rental_id))

    def get_rental_events(self, rental_ids: Sequence[int]) -> list[RentalEvent]:
        """:meth:`get_rental_event` of each id, in order, read in batches (:meth:`read_many`)."""
        answers = self.read_many("getRentalEvent", [(i,) for i in rental_ids])
        return [_rental_event(values) for values in answers]

    def quote(self, rental_id: int, start: int, end: int) -> int:
        return int(self._read("quote", rental_id, start, end))

    def request_rental(self, rental_id: int, start: int, end: int, vehicle_commitment: bytes,
                       value: int | None = None) -> TxResult:
        """Book [start, end); pays ``quote`` unless ``value`` is given."""
        amount = self.quote(rental_id, start, end) if value is None else value
        fn = self.contract.functions.requestRental(rental_id, start, end, vehicle_commitment)
        return self._write(fn, value=amount)

    def cancel_booking(self, booking_id: int) -> TxResult:
        return self._write(self.contract.functions.cancelBooking(booking_id))

    def get_booking(self, booking_id: int) -> Booking:
        return _booking(self._read("getBooking", booking_id))

    def get_bookings(self, booking_ids: Sequence[int]) -> list[Booking]:
        """:meth:`get_booking` of each id, in order, read in batches (:meth:`read_many`)."""
        return [_booking(values) for values in self.read_many("getBooking", [(i,) for i in booking_ids])]

    def live_bookings(self, rental_id: int) -> list[int]:
        return list(self._read("liveBookings", rental_id))

    # ------------------------------------------------------------------ gateway records

    def record_gate_events(self, records: Sequence[GateRecord]) -> TxResult:
        return self._write(self.contract.functions.recordGateEvents(record_words(records)))

    def is_processed(self, gateway: str, seq: int) -> bool:
        return bool(self._read("isProcessed", gateway, seq))

    def last_seq(self, gateway: str) -> int:
        """The gateway's high-water mark: its records up to this number are processed."""
        return int(self._read("lastSeq", gateway))

    # ------------------------------------------------------------------ settlement

    def settle(self, booking_ids: Sequence[int]) -> TxResult:
        return self._write(self.contract.functions.settle(list(booking_ids)))

    def settle_overdue(self, booking_id: int) -> TxResult:
        return self._write(self.contract.functions.settleOverdue(booking_id))

    def expire_booking(self, booking_id: int) -> TxResult:
        return self._write(self.contract.functions.expireBooking(booking_id))

    def withdraw(self) -> TxResult:
        return self._write(self.contract.functions.withdraw())

    def pending_withdrawal(self, payee: str) -> int:
        return int(self._read("pendingWithdrawal", payee))

    def counts(self) -> tuple[int, int, int]:
        """(spaces, rental events, bookings) created so far; ids run from 1 to these counts."""
        spaces, rentals, bookings = (int(self._read(name))
                                     for name in ("spaceCount", "rentalCount", "bookingCount"))
        return spaces, rentals, bookings


def send_value(w3: Web3, sender: Sender, to: str, wei: int, receipt_timeout: float = 120.0) -> bytes:
    """Send ``wei`` of ether from ``sender`` to ``to`` (funding a gateway's gas); returns the tx hash.
    A local account signs an EIP-1559 transfer with the node's current base fee (twice it, so that the
    transfer survives a base-fee rise of a few blocks)."""
    if wei <= 0:
        raise ValueError(f"amount must be above 0 wei, got {wei}")
    params: dict[str, Any] = {"from": _address_of(sender), "to": Web3.to_checksum_address(to), "value": wei}
    if isinstance(sender, LocalAccount):
        tip = w3.eth.max_priority_fee
        base = int(w3.eth.get_block("latest").get("baseFeePerGas", 0))
        params |= {"nonce": w3.eth.get_transaction_count(sender.address, "pending"), "gas": 21_000,
                   "chainId": w3.eth.chain_id, "maxPriorityFeePerGas": tip, "maxFeePerGas": 2 * base + tip}
        tx_hash = w3.eth.send_raw_transaction(sender.sign_transaction(params).raw_transaction)
    else:
        tx_hash = w3.eth.send_transaction(cast(TxParams, params))
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=receipt_timeout)
    if receipt["status"] != 1:
        raise ContractRevert("reverted", (), "0x" + bytes(tx_hash).hex())
    return bytes(tx_hash)
