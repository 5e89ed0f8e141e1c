"""Offline-tolerant sync between the gateway's store and the rental contract (imperative shell).

Two directions, each resumable from what the store holds:

* **down** (:meth:`SyncService.step_down`): this lot's contract logs (rental events, first and second
  associations, booking lifecycle) fetched with ``eth_getLogs`` in bounded block windows (a bounded
  number per step), applied once they have ``confirmations`` blocks on top; the hashes of the blocks
  used are stored, and a block whose hash changed (reorg) rolls the cache back to the common ancestor
  before syncing again. A node behind the stored blocks, or with a head it has no block for, is waited
  for: nothing is rolled back. Logs of another lot, and logs marked ``removed``, are dropped.
* **up** (:meth:`SyncService.step_up`): 'chain' outbox rows batched into ``recordGateEvents``. One
  transaction is in flight at a time. It is signed with a locally chosen nonce and written to the
  ``chain_txs`` table together with the rows' in-flight mark *before* it is broadcast, so a crash at
  any point either rebroadcasts the same signed bytes or replaces them with the same nonce. Rows are
  marked done only after a successful receipt with ``confirmations`` blocks on top. The contract
  skips an event id it has seen, and a row whose transaction vanished is checked with ``isProcessed``
  before it is sent again: every record lands once.

Threads: one :class:`SyncService` runs in one thread (the store is thread-confined): build it inside
the thread, then call :meth:`SyncService.run` with a ``threading.Event`` to stop it. Tests call
:meth:`step_down` / :meth:`step_up` directly. The pure decisions live in :mod:`edge.chain.syncplan`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import random
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from eth_abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import (
    BlockNotFound,
    ContractLogicError,
    TransactionNotFound,
    Web3Exception,
    Web3RPCError,
)
from web3.middleware import ExtraDataToPOAMiddleware
from web3.providers.base import BaseProvider

from edge.chain.contract import DecodedEvent, RentalClient, decode_revert
from edge.chain.keystore import load_account, read_password
from edge.chain.syncplan import (
    APPLIED,
    BOOKING_STATUS_OF_EVENT,
    MAX_CLOCK_SKEW_S,
    RECORD_KINDS,
    SKIPPED,
    Fees,
    NodeBehind,
    Origin,
    RecordOutcome,
    assemble_batch,
    backlog_cost_wei,
    backoff_delay,
    booking_row,
    bumped_fees,
    common_ancestor,
    confirmed_head,
    gwei,
    initial_fees,
    latest_stamp,
    log_order,
    lot_bytes,
    may_have_landed,
    moved,
    of_lot,
    plan_windows,
    record_batch_calldata,
    record_outcomes,
    rental_event_row,
    retry_rejected,
    tx_age_ms,
    uploads,
    windows_left,
)
from edge.clock import Millis, TrustedClock, monotonic_ms
from edge.config import ChainConfig, Config, load_config
from edge.store import Store, StoreError
from edge.store.rows import ChainBlock, Lot, OutboxRow, Space
from edge.store.schema import CHAIN_DESTINATION

log = logging.getLogger(__name__)

DESTINATION = CHAIN_DESTINATION
DOWN_CHECKPOINT = "chain.down"
# Events whose indexed lotId is the third / second topic argument (topic index 3 / 2).
LOT_AT_TOPIC3 = ("RentalEventCreated", "FirstAssociation", "RentalRequested")
LOT_AT_TOPIC2 = ("RentalEventCancelled", "SecondAssociation", "CheckedOut", "Settled", "BookingCancelled",
                 "BookingExpired")


NONCE_USED_NO_RECEIPT = -1
MINED_UNCONFIRMED = -2  # a receipt of ours without its confirmations yet: waited for, never replaced
WAIT = "wait"  # a transaction of ours carried the record's number and may have landed it: no receipt yet
Found = tuple[RecordOutcome, str]  # a record's outcome and the transaction that landed it
OUTCOME_EVENTS = ("GateRecordRejected", "GateRecordSkipped")
NONCE_TOO_LOW = "nonce too low"
# Upper bound of one record's gas in a batch (`make gas`, 2026-12-01: 12,135 check-in / 11,564 check-out per
# record in batches of 100; 63,016 for a batch of one), for the cost of a backlog in the funds alert.
GAS_PER_RECORD = 15_000
PENDING_BLOCK_LEAD_S = 15  # a pending block's timestamp may run this far ahead of the time it is built
# Polls for a receipt within receipt_wait_s back off from 20 ms (anvil's automine answers at once) to a cap
# far below a block time (2-12 s on public chains) and chain.poll_interval_s (2 s): at most 0.25 s later.
RECEIPT_POLL_FIRST_S = 0.02
RECEIPT_POLL_CAP_S = 0.25


class SyncError(Exception):
    """The sync cannot make progress for a reason an operator must fix; the message says what."""


@dataclass(frozen=True)
class SyncTuning:
    """The sync's knobs that are no config keys (the daemon, tests and benches set them); everything an
    operator configures is read from the ``[chain]`` config model itself (``edge.config.ChainConfig``)."""

    upload_kinds: frozenset[str] = frozenset(RECORD_KINDS)
    stuck_after_s: float = 60.0
    receipt_wait_s: float = 2.0
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 300.0
    keep_history_blocks: int = 256
    max_windows_per_step: int = 100  # log windows one down step fetches at most (the rest: next steps)
    # How long a record whose number the contract processed is waited for when a transaction of ours
    # carried it but the node serves neither its receipt nor the transaction as mined; then the number
    # is taken as spent by another signer and the record renumbered (a mined one is waited for always).
    receipt_grace_s: float = 600.0


@dataclass
class SyncHealth:
    """What ``parkgate status``, MQTT and metrics show about the sync (no secrets in here)."""

    backlog: int = 0
    last_synced_block: int | None = None
    head_block: int | None = None
    last_error: str | None = None
    last_error_at_ms: int | None = None
    consecutive_failures: int = 0
    uploaded_total: int = 0
    applied_logs_total: int = 0
    reorgs_total: int = 0
    last_upload_tx: str | None = None
    rejected: int = 0  # gate records the contract rejected (outbox state 'rejected'), as the store holds them
    rejected_records: list[str] = field(default_factory=list)  # the newest, with their reasons
    alerts: dict[str, str] = field(default_factory=dict)  # code -> what is wrong (clock, funds, nonce, ...)
    extra: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "extra"} | self.extra


@dataclass(frozen=True)
class OpenTx:
    tx_hash: str
    nonce: int
    raw_tx: str
    outbox_ids: tuple[int, ...]
    fees: Fees
    sent_at_ms: int


def _hex(value: bytes | str) -> str:
    return value if isinstance(value, str) else "0x" + bytes(value).hex()


class SyncService:
    """Both sync directions over one store, one node and one gateway key (see the module docstring)."""

    def __init__(self, w3: Web3, store: Store, account: LocalAccount, chain: ChainConfig, lot_id: str,
                 tuning: SyncTuning = SyncTuning(), sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None, monotonic: Millis = monotonic_ms) -> None:
        """``chain``: the ``[chain]`` config; ``lot_id``: ``gateway.lot_id`` (the store's lot; the chain's lot
        id is derived from it); ``monotonic``: ms on a clock no step moves (how long our transactions
        waited)."""
        self.w3 = w3
        self.store = store
        self.account = account
        self.chain = chain
        self.lot_id = lot_id
        self.tuning = tuning
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.monotonic = monotonic
        self.client = RentalClient(w3, chain.contract_address, account,
                                   log_window_blocks=chain.log_window_blocks)
        self.lot = lot_bytes(lot_id)
        self.health_state = SyncHealth()
        self._chain_checked = False
        self._broadcast_here: set[str] = set()  # tx hashes this instance handed to the node
        self._chain_high: int | None = None  # the contract's high-water mark of this gateway, when known
        self._sent_mono: dict[str, int] = {}  # open tx hash -> monotonic ms when this process signed it
        self._awaiting: dict[int, int] = {}  # outbox id -> monotonic ms since its number's receipt is awaited
        self._down_left = 0  # log windows the down direction still has to fetch (catching up)
        self._head_shown = -1  # the head the node last showed the block of (see _checked_head)
        self._head_refused: int | None = None  # the head it last said without a block (counted once)

    # ------------------------------------------------------------------ health

    def backlog(self) -> int:
        row = self.store.conn.execute("SELECT count(*) FROM outbox WHERE destination = ? AND status IN "
                                      "('pending', 'in_flight')", (DESTINATION,)).fetchone()
        return int(row[0])

    def health(self) -> SyncHealth:
        checkpoint = self.store.get_checkpoint(DOWN_CHECKPOINT)
        self.health_state.backlog = self.backlog()
        self.health_state.last_synced_block = checkpoint.block_number if checkpoint else None
        self.health_state.rejected = int(self.store.conn.execute(
            "SELECT count(*) FROM outbox WHERE destination = ? AND status = 'rejected'",
            (DESTINATION,)).fetchone()[0])
        self.health_state.rejected_records = rejected_records(self.store, 5)
        return self.health_state

    # ------------------------------------------------------------------ loop

    def step(self) -> bool:
        """One round of both directions. Returns True if it succeeded (errors are recorded in
        health, logged and backed off by :meth:`run`; they never escape)."""
        ok = True
        for direction in (self.step_down, self.step_up):  # one direction's trouble never stalls the other
            try:
                self._check_chain()
                direction()
            except Exception as exc:  # noqa: BLE001 - the loop must survive a dead node or a bad answer
                self._failed(exc)
                ok = False
        self.health_state.consecutive_failures = 0 if ok else self.health_state.consecutive_failures + 1
        return ok

    def run(self, stop: threading.Event, wake: threading.Event | None = None,
            on_round: Callable[[bool], None] = lambda ok: None) -> None:
        """Sync until ``stop`` is set: poll every ``poll_interval_s`` (at once while a backlog is left),
        back off exponentially with jitter while the node fails. ``wake`` (set it when records are
        queued, and on stop) ends a wait early; ``on_round(ok)`` is called after every round."""
        waiting = wake or stop
        while not stop.is_set():
            ok = self.step()
            on_round(ok)
            if ok:
                busy = (self.backlog() and not self._waiting_for_receipt()) or self._down_left
                delay = 0.0 if busy else self.chain.poll_interval_s
            else:
                delay = backoff_delay(self.health_state.consecutive_failures, self.tuning.backoff_base_s,
                                      self.tuning.backoff_cap_s, self.rng)
            waiting.wait(delay)
            if wake is not None:
                wake.clear()

    def run_until_idle(self, max_failures: int = 20) -> None:
        """Sync until the backlog is empty and the cache caught up (tests, ``--once``)."""
        while True:
            if not self.step():
                if self.health_state.consecutive_failures >= max_failures:
                    raise SyncError(f"giving up after {max_failures} failures: "
                                    f"{self.health_state.last_error}")
                self.sleep(backoff_delay(self.health_state.consecutive_failures, 0.05, 1.0, self.rng))
                continue
            if not self.backlog() and not self._down_left:
                return
            if self.backlog() and self._waiting_for_receipt():
                self.sleep(0.05)

    def _failed(self, exc: Exception) -> None:
        message = f"{type(exc).__name__}: {exc}"[:500]
        state = self.health_state
        state.last_error, state.last_error_at_ms = message, self.store.clock()
        log.warning("chain sync failed (%d steps in a row before this one): %s", state.consecutive_failures,
                    message)

    def _check_chain(self) -> None:
        if self._chain_checked:
            return
        chain_id = self.w3.eth.chain_id
        if chain_id != self.chain.chain_id:
            raise SyncError(f"the node at the RPC URL is chain {chain_id}, config chain.chain_id is "
                            f"{self.chain.chain_id}; point chain.rpc_url at the right network")
        if not self.w3.eth.get_code(Web3.to_checksum_address(self.client.address)):
            raise SyncError(f"no contract at chain.contract_address {self.client.address} "
                            f"on chain {chain_id}")
        self._chain_checked = True

    # ------------------------------------------------------------------ down

    def step_down(self) -> int:
        """Check the head and the stored blocks (reorg, node behind), then apply confirmed logs of this lot,
        at most ``max_windows_per_step`` windows (the rest in the next steps)."""
        self._down_left = 0
        head = self._checked_head()
        if head is None or not self._handle_reorg(head):
            return 0
        checkpoint = self.store.get_checkpoint(DOWN_CHECKPOINT)
        first = checkpoint.block_number + 1 if checkpoint else self.chain.start_block
        last, size = confirmed_head(head, self.chain.confirmations), self.chain.log_window_blocks
        applied, synced = 0, None
        for start, end in plan_windows(first, last, size, self.tuning.max_windows_per_step):
            applied += self._sync_window(start, end)
            synced = end
        self.health_state.applied_logs_total += applied
        self._down_left = windows_left(first if synced is None else synced + 1, last, size)
        self.health_state.extra["down_windows_left"] = self._down_left
        if synced is not None:  # bound chain_history and chain_blocks to the reorg horizon below what we hold
            self.store.prune_chain_history(max(min(head, synced) - self.tuning.keep_history_blocks, 0))
        return applied

    def _checked_head(self) -> int | None:
        """The node's head, if the node can show the block of it; None for any other (a lying or broken node:
        2**62), counted and alerted once per head it says (the receipt wait asks each poll). Nothing is
        planned or pruned from such a head (memory, history) and no upload is confirmed by it (rows finished
        while a reorg can still drop their transaction are lost). The block of the head the node showed
        last is not fetched again (an idle step would ask for the same block every poll); any other head,
        higher or lower (a reorg to a shorter chain, a failover to a node behind), is checked."""
        head = self.w3.eth.block_number
        self.health_state.head_block = head
        if head != self._head_shown:
            try:
                self.w3.eth.get_block(head)
            except (BlockNotFound, Web3RPCError) as exc:
                if head == self._head_refused:
                    return None
                self._head_refused = head
                self._count("implausible_heads_total")
                self._alert("implausible_head", f"the node says the chain head is block {head} but has no "
                            f"block {head} ({type(exc).__name__}); cache updates and upload confirmations "
                            "wait for a head the node can show")
                return None
            self._head_shown = head
        self._head_refused = None
        self._clear_alert("implausible_head")
        return head

    def _handle_reorg(self, head: int) -> bool:
        """Roll back what a reorg orphaned. False when the node is behind the stored blocks (step skipped)."""
        stored = [ChainBlock(*r) for r in self.store.conn.execute(
            "SELECT number, hash, parent_hash FROM chain_blocks ORDER BY number DESC LIMIT ?",
            (self.tuning.keep_history_blocks,))]
        verdict = common_ancestor(stored, head, self._chain_hash)
        if isinstance(verdict, NodeBehind):
            self._count("node_behind_total")
            self._alert("node_behind", f"the node is behind this gateway: its head is block {verdict.head} "
                        f"and it has no block {verdict.missing}, which the cache holds; nothing rolled back, "
                        "cache updates wait for it to catch up (another node behind chain.rpc_url?)")
            return False
        self._clear_alert("node_behind")
        if verdict is None:
            return True
        target = max(verdict.ancestor, self.chain.start_block - 1, 0)
        undone = self.store.rollback_to_block(target)
        self.health_state.reorgs_total += 1
        log.warning("chain reorg below block %d: rolled back to block %d (%d rows restored or removed)",
                    stored[0].number, target, undone)
        return True

    def _chain_hash(self, number: int) -> str | None:
        try:
            return _hex(self.w3.eth.get_block(number)["hash"])
        except BlockNotFound:
            return None

    def _sync_window(self, start: int, end: int) -> int:
        events = self._fetch_events(start, end)
        blocks = {n: self.w3.eth.get_block(n) for n in sorted({e.block_number for e in events} | {end})}
        hashes = {n: _hex(b["hash"]) for n, b in blocks.items()}
        applied = 0
        with self.store.transaction():
            for event in events:
                applied += self._apply_or_drop(event, hashes[event.block_number])
            for number, block in blocks.items():
                self.store.record_block(ChainBlock(number, hashes[number], _hex(block["parentHash"])))
            self.store.set_checkpoint(DOWN_CHECKPOINT, end, hashes[end])
        return applied

    def _fetch_events(self, start: int, end: int) -> list[DecodedEvent]:
        topic_of = {name: _hex(t) for t, name in self.client._events_by_topic.items()}
        lot_topic = _hex(self.lot)
        logs: list[Any] = []
        for names, position in ((LOT_AT_TOPIC3, 3), (LOT_AT_TOPIC2, 2)):
            topics: list[Any] = [[topic_of[n] for n in names]] + [None] * (position - 1) + [lot_topic]
            address = Web3.to_checksum_address(self.client.address)
            logs += self.w3.eth.get_logs({"address": address, "fromBlock": start, "toBlock": end,
                                          "topics": topics})
        removed = [lg for lg in logs if lg.get("removed")]
        if removed:  # a log of a block that left the chain: never applied (the reorg check handles the rest)
            self._count("removed_logs", len(removed))
            log.warning("dropped %d logs the node marked removed (blocks %d-%d)", len(removed), start, end)
            logs = [lg for lg in logs if not lg.get("removed")]
        by_block_hash = {(lg["blockNumber"], lg["logIndex"]): _hex(lg["blockHash"]) for lg in logs}
        events = sorted(self.client.decode_logs(logs), key=log_order)
        self._log_hashes = by_block_hash
        return events

    def _apply_or_drop(self, event: DecodedEvent, block_hash: str) -> int:
        """A log the cache refuses (values outside what the store allows) is counted and dropped, so
        one bad log never blocks the checkpoint."""
        try:
            with self.store.transaction():
                return self._apply(event, block_hash)
        except (ValueError, StoreError) as exc:
            self.health_state.extra["dropped_logs"] = self.health_state.extra.get("dropped_logs", 0) + 1
            log.warning("dropped %s log at block %d index %d: %s", event.name, event.block_number,
                        event.log_index, exc)
            return 0

    def _apply(self, event: DecodedEvent, block_hash: str) -> int:
        """Apply one log to the cache; returns 1 if it changed something the gate decides on."""
        if not of_lot(event.args, self.lot):
            return self._foreign_lot(event)
        if self._log_hashes.get((event.block_number, event.log_index)) != block_hash:
            raise SyncError(f"block {event.block_number} changed while syncing (reorg in progress); retrying")
        origin = Origin(event.block_number, block_hash, event.log_index, _hex(event.tx_hash))
        args, lot = event.args, self.lot_id
        if event.name == "RentalEventCreated":
            self.store.upsert_rental_event(rental_event_row(args, lot, origin))
        elif event.name == "FirstAssociation":
            self._apply_address(args)
        elif event.name == "RentalEventCancelled":
            rental = self.store.rental_event(str(args["rentalId"]))
            if rental is None:
                return self._unknown("rental event", args["rentalId"])
            self.store.upsert_rental_event(moved(rental, "cancelled", origin))
        elif event.name == "RentalRequested":
            rental = self.store.rental_event(str(args["rentalId"]))
            if rental is None:
                return self._unknown("rental event", args["rentalId"])
            self.store.upsert_booking(booking_row(args, rental, origin))
        else:
            booking = self.store.booking(str(args["bookingId"]))
            if booking is None:
                return self._unknown("booking", args["bookingId"])
            self.store.upsert_booking(moved(booking, BOOKING_STATUS_OF_EVENT[event.name], origin))
        return 1

    def _apply_address(self, args: dict[str, Any]) -> None:
        """First association: the lot's geohash and the space's location (address info only)."""
        lot = self.store.lot(self.lot_id) or Lot(self.lot_id)
        self.store.upsert_lot(replace(lot, geohash=str(args["geohash"])))
        self.store.upsert_space(Space(space_id=str(args["spaceId"]), lot_id=self.lot_id,
                                      bay=str(args["location"]), geohash=str(args["geohash"])))

    def _foreign_lot(self, event: DecodedEvent) -> int:
        """A log of another lot (a node or proxy that ignored the lotId topic filter): counted and dropped."""
        self._count("foreign_lot_logs")
        log.warning("dropped %s log at block %d index %d: its lotId is not this lot's (%s)", event.name,
                    event.block_number, event.log_index, self.lot_id)
        return 0

    def _unknown(self, what: str, ident: int) -> int:
        """A log about something created before ``start_block``: counted and dropped."""
        key = f"unknown_{what.replace(' ', '_')}_logs"
        self.health_state.extra[key] = self.health_state.extra.get(key, 0) + 1
        log.info("ignoring a log about %s %s that is not in the cache (created before the start block)",
                 what, ident)
        return 0

    # ------------------------------------------------------------------ up

    def step_up(self) -> int:
        """Settle the transaction in flight, or send the next batch. Returns rows finished (done or
        rejected for good)."""
        open_group = self._open_txs()
        if open_group:
            return self._settle(open_group)
        rows = self._pending_rows(self.chain.batch_size)
        if not rows:
            return 0
        finished, waiting = self._reconcile_landed(rows)
        if finished:
            return finished
        # renumbered rows moved to the end; rows whose earlier transaction may have landed them wait
        rows = [r for r in self._pending_rows(self.chain.batch_size) if r.id not in waiting]
        if not rows:
            return 0
        kinds = self.tuning.upload_kinds
        seqs, new_seqs = self._assign_seqs([r for r in rows if uploads(r, kinds)])
        block = self._next_block()  # one read for the stamps and the fees
        batch = assemble_batch(rows, kinds, seqs, latest_stamp(self._check_clock(block)))
        with self.store.transaction():
            for row in batch.skipped:
                self.store.mark_outbox_done([row.id], f"not-uploaded:{row.gate_event().kind}")
            for row, reason in batch.poison:
                self.store.mark_outbox_dead([row.id], reason)
        if not batch.records:
            return len(batch.skipped)
        sent = [r.id for r in batch.rows]  # in number order (a replacement rebuilds from this order)
        numbered = [pair for pair in new_seqs if pair[0] in set(sent)]
        self._send_new(sent, record_batch_calldata(batch.records), numbered, block)
        return len(batch.skipped) + self._settle(self._open_txs())

    # -- record numbers (the contract's per-gateway high-water mark)

    def _pending_rows(self, limit: int) -> list[OutboxRow]:
        """Pending 'chain' rows: numbered ones first in number order, then new ones oldest first."""
        ids = [i for (i,) in self.store.conn.execute(
            "SELECT o.id FROM outbox o LEFT JOIN chain_seqs s ON s.outbox_id = o.id WHERE o.destination = ? "
            "AND o.status IN ('pending', 'in_flight') ORDER BY s.seq IS NULL, s.seq, o.id LIMIT ?",
            (DESTINATION, limit))]
        return self.store.outbox_rows(ids)

    def _seqs(self, ids: Sequence[int]) -> dict[int, int]:
        marks = ", ".join("?" * len(ids))
        return dict(self.store.conn.execute(
            f"SELECT outbox_id, seq FROM chain_seqs WHERE outbox_id IN ({marks})", list(ids)).fetchall())

    def _high_water(self) -> int:
        """The contract's high-water mark for this gateway; read from the node once per process (and
        whenever a record comes back skipped), then known from our own mined batches."""
        if self._chain_high is None:
            self._chain_high = self.client.last_seq(self.account.address)
        return self._chain_high

    def _assign_seqs(self, rows: Sequence[OutboxRow]) -> tuple[dict[int, int], list[tuple[int, int]]]:
        """Numbers for ``rows`` (in order): kept when assigned before, else the next above both the
        highest local number and the chain's high-water mark. Returns all numbers and the new
        (outbox id, number) pairs, which :meth:`_sign_record_broadcast` stores in the transaction that
        records the signed transaction: durable before anything is broadcast."""
        known = self._seqs([r.id for r in rows])
        missing = [r.id for r in rows if r.id not in known]
        if missing:
            local = self.store.conn.execute("SELECT COALESCE(max(seq), 0) FROM chain_seqs").fetchone()[0]
            chain = self._high_water()
            if chain > local:
                self._alert("foreign_records", f"the contract's high-water mark for {self.account.address} "
                            f"is {chain}, above the highest number this gateway assigned ({local}): another "
                            "device signs with this key, or the store was restored from an old backup")
            first = max(int(local), chain) + 1
            new = [(row_id, first + n) for n, row_id in enumerate(missing)]
            return known | dict(new), new
        return known, []

    def _reconcile_landed(self, rows: Sequence[OutboxRow]) -> tuple[int, set[int]]:
        """Rows whose number the contract has already processed (a receipt lost to a crash, or a number
        another signer used): their outcome is read from our own earlier transaction; a number no
        transaction of ours carried is spent by someone else, so the row is renumbered and sent again.
        Returns the rows finished and the ids of rows that wait for a receipt of ours (not sent now)."""
        seqs = self._seqs([r.id for r in rows])
        if not seqs:
            return 0, set()
        high = self._high_water()
        landed = [r for r in rows if r.id in seqs and seqs[r.id] <= high]
        seen: dict[str, Any] = {}
        outcomes = [(r, self._outcome_from_history(r.id, seqs[r.id], seen)) for r in landed]
        known = [(r, found) for r, found in outcomes if isinstance(found, tuple)]
        waiting = self._note_waiting(outcomes)
        with self.store.transaction():
            self._renumber_foreign([r.id for r, found in outcomes if found is None])
            finished = sum(self._finish(row, *found) for row, found in known)
            self._mark_mined({tx_hash for _, (_, tx_hash) in known})
        return finished or len(known), waiting

    def _note_waiting(self, outcomes: Sequence[tuple[OutboxRow, Found | str | None]]) -> set[int]:
        """Remember since when each row waits for a receipt of ours (rows resolved are forgotten)."""
        waiting = {row.id for row, found in outcomes if found == WAIT}
        for row, _ in outcomes:
            if row.id not in waiting:
                self._awaiting.pop(row.id, None)
        if waiting:
            self._count("receipt_waits_total")
            log.info("%d records wait for the receipt of a transaction of ours that carried their numbers",
                     len(waiting))
        return waiting

    def _mark_mined(self, tx_hashes: set[str]) -> None:
        """A transaction settled as dropped (no receipt then) whose receipt has since shown: it was mined."""
        self.store.conn.executemany("UPDATE chain_txs SET status = 'mined' WHERE tx_hash = ? AND "
                                    "status = 'dropped'", [(h,) for h in sorted(tx_hashes)])

    def _renumber_foreign(self, ids: Sequence[int]) -> None:
        """Rows whose numbers the contract skipped although no transaction of ours carried them: the
        numbers were spent by another signer with this key; send the rows again under new numbers."""
        if not ids:
            return
        extra = self.health_state.extra
        extra["renumbered_total"] = extra.get("renumbered_total", 0) + len(ids)
        self._alert("foreign_records", f"{len(ids)} record numbers of {self.account.address} were used by a "
                    "transaction this gateway did not send (another device with this key?); renumbered")
        self.store.renumber_outbox(ids, "number used by another signer; renumbered")

    def _outcome_from_history(self, row_id: int, seq: int, seen: dict[str, Any]) -> Found | str | None:
        """What became of record ``seq`` in the newest successful transaction of ours that carried it.
        ``WAIT``: a transaction of ours carried it and may have landed it, but the node serves no receipt
        for it yet. ``None``: none of ours did (the number was spent by another signer). ``seen`` caches
        the node's answers for one round."""
        txs = self.store.conn.execute(
            "SELECT c.tx_hash, c.nonce, c.status FROM chain_txs c, json_each(c.outbox_ids) j "
            "WHERE j.value = ? ORDER BY c.rowid DESC LIMIT 20", (row_id,)).fetchall()
        receipts = {h: self._cached(seen, "receipt:" + h, partial(self._receipt, h)) for h, _, _ in txs}
        mined_nonces = [n for h, n, status in txs if receipts[h] is not None or status == "mined"]
        unresolved = False
        for tx_hash, nonce, status in txs:
            receipt = receipts[tx_hash]
            if receipt is None:
                sibling_mined = mined_nonces.count(nonce) > (status == "mined")
                unresolved = unresolved or self._may_have_landed(row_id, tx_hash, status, sibling_mined, seen)
                continue
            if receipt["status"] != 1 or seq not in self._tx_seqs(tx_hash):
                continue
            events = self._outcome_logs(receipt["logs"])
            outcome = record_outcomes(self.account.address, [seq], events)[seq]
            if outcome.state != SKIPPED:
                return outcome, tx_hash
        return WAIT if unresolved else None

    def _may_have_landed(self, row_id: int, tx_hash: str, status: str, sibling_mined: bool,
                         seen: dict[str, Any]) -> bool:
        if status == "replaced" or sibling_mined:
            return False  # known not to have landed anything: asking the node is not needed
        mined = self._cached(seen, "mined:" + tx_hash, partial(self._tx_mined, tx_hash))
        since = self._awaiting.setdefault(row_id, self.monotonic())
        return may_have_landed(status, sibling_mined, mined, self.monotonic() - since,
                               int(self.tuning.receipt_grace_s * 1000))

    @staticmethod
    def _cached(seen: dict[str, Any], key: str, ask: Callable[[], Any]) -> Any:
        if key not in seen:
            seen[key] = ask()
        return seen[key]

    def _tx_mined(self, tx_hash: str) -> bool:
        """Whether the node has the transaction in a block (it may serve the receipt only later)."""
        try:
            return self.w3.eth.get_transaction(HexStr(tx_hash)).get("blockNumber") is not None
        except TransactionNotFound:
            return False

    def _outcome_logs(self, logs: Sequence[Any]) -> list[DecodedEvent]:
        """The receipt's GateRecordRejected / GateRecordSkipped logs, decoded (the others, one per applied
        record, are not decoded: web3's decoder is the slow part of settling a big batch)."""
        wanted = {_hex(t) for t, name in self.client._events_by_topic.items() if name in OUTCOME_EVENTS}
        return self.client.decode_logs([lg for lg in logs
                                        if lg["topics"] and _hex(lg["topics"][0]) in wanted])

    def _tx_seqs(self, tx_hash: str) -> set[int]:
        data = bytes(HexBytes(self.w3.eth.get_transaction(HexStr(tx_hash))["input"]))
        (words,) = abi_decode(["uint256[]"], data[4:])
        return {word >> 192 for word in words[0::2]}

    def _finish(self, row: OutboxRow, outcome: RecordOutcome, tx_hash: str) -> int:
        """Record what the contract did with a row's record (inside the caller's transaction). Returns 1
        when the row is finished (done, or rejected for good), 0 when it goes back for a retry."""
        state = self.health_state
        if outcome.state == APPLIED:
            self.store.mark_outbox_done([row.id], tx_hash)
            state.uploaded_total += 1
            return 1
        if outcome.state == SKIPPED:
            raise SyncError(f"outbox row {row.id}: skipped record reached _finish")  # resolved by the caller
        if retry_rejected(outcome.reason, row.attempts):
            state.extra["rejected_retried_total"] = state.extra.get("rejected_retried_total", 0) + 1
            self.store.renumber_outbox([row.id], f"rejected on chain: {outcome.reason} (tx {tx_hash}); "
                                       "retrying under a new number")
            return 0
        self.store.mark_outbox_rejected([row.id], f"{outcome.reason} (tx {tx_hash})")
        state.extra["rejected_total"] = state.extra.get("rejected_total", 0) + 1
        event = row.gate_event()  # it was sent: a gate event
        kind, booking = event.kind, event.booking_id
        self._alert("record_rejected", f"the contract rejected {kind} record {row.event_id} "
                    f"(booking {booking}): {outcome.reason}; see `parkgate chain status`")
        return 1

    # -- clock, alerts

    def _next_block(self) -> Any:
        """The block the next transaction lands in, as far as the node can tell: the pending block (its
        timestamp is the time the next block will carry, its base fee the next base fee); the latest
        block on nodes without a pending block."""
        try:
            return self.w3.eth.get_block("pending")
        except Exception:  # noqa: BLE001 - not every node serves the pending block
            return self.w3.eth.get_block("latest")

    def _check_clock(self, block: Any) -> int:
        """Compare the gateway clock with the chain's (``block``: :meth:`_next_block`); alert when it runs
        ahead by more than the contract's skew. Returns the chain time."""
        chain_time = int(block["timestamp"])
        # The chain's time has passed (less a block interval for a pending block): a clock floor (edge.clock).
        with contextlib.suppress(sqlite3.Error):
            self.store.raise_clock_floor((chain_time - PENDING_BLOCK_LEAD_S) * 1000)
        ahead = self.store.clock() // 1000 - chain_time
        self.health_state.extra["clock_ahead_s"] = ahead
        if ahead > MAX_CLOCK_SKEW_S:
            self._alert("clock_ahead", f"gateway clock {ahead} s ahead of the chain (contract allows "
                        f"{MAX_CLOCK_SKEW_S} s); records are stamped no later than chain time + "
                        f"{MAX_CLOCK_SKEW_S} s: fix NTP")
        else:
            self._clear_alert("clock_ahead")
        return chain_time

    def _count(self, key: str, n: int = 1) -> None:
        self.health_state.extra[key] = self.health_state.extra.get(key, 0) + n

    def _alert(self, code: str, detail: str) -> None:
        if self.health_state.alerts.get(code) != detail:
            log.warning("chain sync alert %s: %s", code, detail)
        self.health_state.alerts[code] = detail

    def _clear_alert(self, code: str) -> None:
        self.health_state.alerts.pop(code, None)

    # -- transactions

    def _open_txs(self) -> list[OpenTx]:
        rows = self.store.conn.execute(
            "SELECT tx_hash, nonce, raw_tx, outbox_ids, max_fee_wei, priority_fee_wei, sent_at_ms "
            "FROM chain_txs WHERE status = 'pending' ORDER BY nonce, sent_at_ms, rowid").fetchall()
        return [OpenTx(h, n, raw, tuple(json.loads(ids)), Fees(int(mf), int(pf)), at)
                for h, n, raw, ids, mf, pf, at in rows]

    def _fees(self, block: Any = None) -> tuple[int, int]:
        base = int((block or self._next_block()).get("baseFeePerGas", 0))
        return base, gwei(self.chain.priority_fee_gwei)

    def _call_tx(self, data: bytes, nonce: int, fees: Fees) -> dict[str, Any]:
        """A signed-ready EIP-1559 transaction calling the contract with ``data`` (gas estimated)."""
        call = {"from": self.account.address, "to": self.client.address, "data": _hex(data), "value": 0}
        try:
            gas = self.w3.eth.estimate_gas(call)  # type: ignore[arg-type]
        except ContractLogicError as exc:
            revert = decode_revert(self.client.abi, exc.data if isinstance(exc.data, str | bytes) else None)
            raise SyncError(f"recordGateEvents would revert ({revert}); is {self.account.address} a gateway "
                            "of this lot (setGateway)?") from exc
        except (ValueError, Web3Exception) as exc:
            if "insufficient funds" in str(exc).lower():
                raise SyncError(self._funds_alert()) from None
            raise
        return {"to": call["to"], "data": call["data"], "value": 0, "gas": gas * 6 // 5 + 21_000,
                "nonce": nonce, "maxFeePerGas": fees.max_fee, "maxPriorityFeePerGas": fees.priority_fee,
                "chainId": self.chain.chain_id, "type": 2}

    def _send_new(self, outbox_ids: list[int], data: bytes, new_seqs: Sequence[tuple[int, int]],
                  block: Any) -> None:
        """Sign and send a new batch with the node's pending nonce (re-read every time: a nonce used by
        another sender is never reused)."""
        base, tip = self._fees(block)
        fees = initial_fees(base, tip, gwei(self.chain.max_fee_gwei))
        nonce = self.w3.eth.get_transaction_count(self.account.address, "pending")
        self._sign_record_broadcast(self._call_tx(data, nonce, fees), nonce, outbox_ids, fees, new_seqs)

    def _sign_record_broadcast(self, tx: dict[str, Any], nonce: int, outbox_ids: Sequence[int],
                               fees: Fees, new_seqs: Sequence[tuple[int, int]] = ()) -> str:
        signed = self.account.sign_transaction(tx)
        tx_hash, raw = _hex(signed.hash), _hex(signed.raw_transaction)
        with self.store.transaction() as conn:  # durable BEFORE the node sees it
            conn.executemany("INSERT INTO chain_seqs (outbox_id, seq) VALUES (?, ?)", list(new_seqs))
            conn.execute("INSERT INTO chain_txs (tx_hash, nonce, raw_tx, outbox_ids, max_fee_wei, "
                         "priority_fee_wei, sent_at_ms) VALUES (?,?,?,?,?,?,?)",
                         (tx_hash, nonce, raw, json.dumps(list(outbox_ids)), str(fees.max_fee),
                          str(fees.priority_fee), self.store.clock()))
            self.store.mark_outbox_in_flight(list(outbox_ids), sent_ref=tx_hash)
        self._broadcast_here.add(tx_hash)
        self._sent_mono[tx_hash] = self.monotonic()
        self._broadcast(raw)
        return tx_hash

    def _broadcast(self, raw: str) -> str | None:
        """Hand signed bytes to the node. Returns None when it took them (or knew them) and
        ``NONCE_TOO_LOW`` when their nonce is already used; "insufficient funds" raises SyncError with an
        alert naming the balance and the backlog's cost; other refusals are settled on the next step."""
        try:
            self.w3.eth.send_raw_transaction(HexStr(raw))
        except (ValueError, Web3Exception) as exc:
            text = str(exc).lower()
            if "already known" in text or "already imported" in text:
                return None
            if "nonce too low" in text or "nonce has already been used" in text:
                self._alert("nonce_conflict", f"the node says nonce too low for {self.account.address}: "
                            "another sender used the nonce (a cloned gateway, a transaction sent by hand); "
                            "re-reading the pending nonce")
                return NONCE_TOO_LOW
            if "insufficient funds" in text:
                raise SyncError(self._funds_alert()) from None
            log.warning("node refused a broadcast (settled on the next step): %s", exc)
            return str(exc)
        self._clear_alert("insufficient_funds")
        return None

    def _funds_alert(self) -> str:
        balance = self.w3.eth.get_balance(self.account.address)
        backlog = self.backlog()
        cost = backlog_cost_wei(backlog, GAS_PER_RECORD, gwei(self.chain.max_fee_gwei), self.chain.batch_size)
        detail = (f"insufficient funds: gateway {self.account.address} holds {balance} wei; the backlog of "
                  f"{backlog} records needs up to {cost} wei at chain.max_fee_gwei; fund the account")
        self._alert("insufficient_funds", detail)
        return detail

    def _settle(self, group: list[OpenTx]) -> int:
        """Resolve the nonce in flight: mined and confirmed (read each record's outcome), mined without its
        confirmations yet (wait, however long: never replaced), consumed by something else (rows go back;
        their numbers are checked against the high-water mark), stuck (replace with bumped fees) or still
        pending (wait)."""
        newest = group[-1]
        refused = None
        if newest.tx_hash not in self._broadcast_here and not self._node_knows(newest.tx_hash):
            refused = self._broadcast(newest.raw_tx)  # signed by a run that died before the node saw it
        self._broadcast_here.add(newest.tx_hash)
        outcome = self._await_receipt(group, 0 if refused == NONCE_TOO_LOW else self.tuning.receipt_wait_s)
        if outcome == MINED_UNCONFIRMED:
            self._confirmations_waited(newest)
            return 0  # its confirmations take block times; a fee bump could only hit a mined nonce
        self._clear_alert("confirmations_waiting")
        if outcome == NONCE_USED_NO_RECEIPT and any(self._tx_mined(tx.tx_hash) for tx in group):
            # The node has our transaction in a block but serves no receipt yet (it indexes receipts a
            # moment after the nonce moves): wait for it, never settle the rows without their outcome.
            self._count("receipt_waits_total")
            log.info("nonce %d: our transaction is mined but the node has no receipt yet; waiting",
                     group[0].nonce)
            return 0
        if outcome == NONCE_USED_NO_RECEIPT:
            # No receipt for any of our hashes, none of them mined as far as the node knows (another sender
            # used the nonce, or a node that indexes late): give the rows back; the next step checks their
            # numbers against the high-water mark before sending any again (and waits for a receipt of ours
            # while one may still come, _outcome_from_history).
            self._close_group(group[0].nonce, list(group[-1].outbox_ids),
                              error=f"nonce {group[0].nonce} used without a known receipt; rechecking")
            self._chain_high = None
            return 0
        if outcome is None:
            self._maybe_replace(group)
            return 0
        return outcome

    def _await_receipt(self, group: list[OpenTx], wait_s: float) -> int | None:
        """:meth:`_try_resolve` until it finds a receipt or ``wait_s`` has passed, polling with backoff. A
        receipt still short of its confirmations ends the wait: they take block times, and the next step
        settles the nonce (polling for them cost 3 calls every 20 ms, ~220 calls a batch at 2 s)."""
        deadline, polls = time.monotonic() + wait_s, 0
        while True:
            outcome = self._try_resolve(group)
            left = deadline - time.monotonic()
            if outcome not in (None, NONCE_USED_NO_RECEIPT) or left <= 0:
                return outcome
            polls += 1
            self.sleep(min(left, backoff_delay(polls, RECEIPT_POLL_FIRST_S, RECEIPT_POLL_CAP_S, self.rng)))

    def _receipt(self, tx_hash: str) -> Any:
        try:
            return self.w3.eth.get_transaction_receipt(HexStr(tx_hash))
        except TransactionNotFound:
            return None

    def _try_resolve(self, group: list[OpenTx]) -> int | None:
        nonce, ids = group[0].nonce, list(group[-1].outbox_ids)
        # Ask for the nonce BEFORE the receipts: a transaction mined in between is then seen by both.
        nonce_used = self.w3.eth.get_transaction_count(self.account.address, "latest") > nonce
        for tx in group:
            receipt = self._receipt(tx.tx_hash)
            if receipt is None:
                continue
            head = self._checked_head()
            if head is None or receipt["blockNumber"] + self.chain.confirmations > head:
                return MINED_UNCONFIRMED  # (or by a head the node cannot show)
            if receipt["status"] != 1:
                self._close_group(nonce, ids, error=f"transaction {tx.tx_hash} reverted")
                raise SyncError(f"recordGateEvents transaction {tx.tx_hash} reverted; rows will be retried")
            return self._close_mined(nonce, ids, tx.tx_hash, receipt)
        return NONCE_USED_NO_RECEIPT if nonce_used else None

    def _close_mined(self, nonce: int, ids: list[int], tx_hash: str, receipt: Any) -> int:
        """Read every record's outcome from the receipt's logs and finish the rows accordingly."""
        seqs = self._seqs(ids)
        outcomes = record_outcomes(self.account.address, [seqs[i] for i in ids if i in seqs],
                                   self._outcome_logs(receipt["logs"]))
        rows = self.store.outbox_rows(ids)
        if outcomes:
            self._chain_high = max([*outcomes, self._chain_high or 0])
        if any(o.state == SKIPPED for o in outcomes.values()):
            self._chain_high = None  # someone else may be numbering with this key: ask the node again
        resolved: list[tuple[OutboxRow, Found | str | None]] = []
        seen: dict[str, Any] = {}
        for row in rows:
            outcome = outcomes.get(seqs.get(row.id, -1), RecordOutcome(SKIPPED))
            if outcome.state == SKIPPED:  # landed earlier: its outcome is in that transaction
                found = self._outcome_from_history(row.id, seqs[row.id], seen) if row.id in seqs else None
                resolved.append((row, found))
            else:
                resolved.append((row, (outcome, tx_hash)))
        waiting = self._note_waiting(resolved)
        with self.store.transaction():
            self._close_group(nonce, [], mined=tx_hash)
            self._renumber_foreign([row.id for row, found in resolved if found is None])
            self.store.mark_outbox_failed(sorted(waiting), "number carried by an earlier transaction of ours "
                                          "whose receipt the node does not serve yet; waiting for it")
            known = [(row, found) for row, found in resolved if isinstance(found, tuple)]
            finished = sum(self._finish(row, *found) for row, found in known)
            self._mark_mined({h for _, (_, h) in known if h != tx_hash})
        self.health_state.last_upload_tx = tx_hash
        return finished

    def _close_group(self, nonce: int, ids: list[int], mined: str | None = None, error: str = "") -> None:
        """Finish the nonce in flight: its transactions mined / replaced / dropped; rows not mined go back
        to pending with ``error`` (mined rows are finished by :meth:`_close_mined`)."""
        with self.store.transaction() as conn:
            conn.execute("UPDATE chain_txs SET status = CASE WHEN tx_hash = ? THEN 'mined' WHEN ? THEN "
                         "'replaced' ELSE 'dropped' END WHERE nonce = ? AND status = 'pending'",
                         (mined, mined is not None, nonce))
            if not mined:
                self.store.mark_outbox_failed(ids, error)
            still_open = {h for (h,) in conn.execute("SELECT tx_hash FROM chain_txs WHERE status = "
                                                     "'pending'")}
        self._sent_mono = {h: at for h, at in self._sent_mono.items() if h in still_open}

    def _confirmations_waited(self, tx: OpenTx) -> None:
        """A mined batch is never replaced, so one that waits for its confirmations longer than
        ``stuck_after_s`` (block production stalled, a node whose head froze) is alerted instead: its
        records wait with it."""
        age_s = self._age_ms(tx) // 1000
        if age_s >= self.tuning.stuck_after_s:
            self._alert("confirmations_waiting", f"transaction {tx.tx_hash} (nonce {tx.nonce}) is mined but "
                        f"has waited {age_s} s for {self.chain.confirmations} confirmation(s): is the chain "
                        "producing blocks, and is the node's head moving?")

    def _maybe_replace(self, group: list[OpenTx]) -> None:
        newest = group[-1]
        if not self._node_knows(newest.tx_hash):
            self._broadcast(newest.raw_tx)  # lost by the node (restart, crash before broadcast)
        age_s = self._age_ms(newest) / 1000
        if age_s < self.tuning.stuck_after_s:
            return
        base, tip = self._fees()
        fees = bumped_fees(newest.fees, base, tip, gwei(self.chain.max_fee_gwei))
        if fees is None:
            raise SyncError(f"tx {newest.tx_hash} (nonce {newest.nonce}) is stuck; a +12.5% "
                            "fee bump would pass chain.max_fee_gwei; raise it or wait for a lower base fee")
        replacement = self._rebuild(newest, fees)
        new_hash = self._sign_record_broadcast(replacement, newest.nonce, newest.outbox_ids, fees)
        log.info("replaced stuck transaction %s with %s (nonce %d, max fee %d wei)", newest.tx_hash, new_hash,
                 newest.nonce, fees.max_fee)

    def _age_ms(self, tx: OpenTx) -> int:
        """How long ``tx`` has waited: on the store's clock and, when this process signed it, on the
        monotonic clock (the larger). A ``sent_at_ms`` in the future (signed while the clock ran ahead, then
        NTP stepped it back) is rewritten to now: the stuck timer restarts once instead of never running."""
        now = self.store.clock()
        if tx.sent_at_ms > now:
            with self.store.transaction() as conn:
                conn.execute("UPDATE chain_txs SET sent_at_ms = ? WHERE tx_hash = ?", (now, tx.tx_hash))
            log.warning("transaction %s was stamped %d s in the future (the clock stepped back since); its "
                        "stuck timer restarts now", tx.tx_hash, (tx.sent_at_ms - now) // 1000)
        signed_at = self._sent_mono.get(tx.tx_hash)
        here_ms = None if signed_at is None else self.monotonic() - signed_at
        return tx_age_ms(now, min(tx.sent_at_ms, now), here_ms)

    def _rebuild(self, old: OpenTx, fees: Fees) -> dict[str, Any]:
        """The same call (same rows, same numbers, same nonce) with new fees, rebuilt from the outbox rows."""
        rows = self.store.outbox_rows(list(old.outbox_ids))
        batch = assemble_batch(rows, self.tuning.upload_kinds, self._seqs(list(old.outbox_ids)),
                               latest_stamp(self._check_clock(self._next_block())))
        return self._call_tx(record_batch_calldata(batch.records), old.nonce, fees)

    def _node_knows(self, tx_hash: str) -> bool:
        try:
            self.w3.eth.get_transaction(HexStr(tx_hash))
        except TransactionNotFound:
            return False
        return True

    def _waiting_for_receipt(self) -> bool:
        return bool(self._open_txs()) or bool(self._awaiting)


REJECTED_SHOWN = 10


def stored_status(store: Store) -> dict[str, Any]:
    """The sync's state as the store holds it (for ``parkgate chain status`` in another process):
    backlog, last synced block, transactions in flight, rejected records and the newest upload error;
    ``done``: delivered, ``dropped``: given up by an operator (`parkgate store outbox drop`)."""
    checkpoint = store.get_checkpoint(DOWN_CHECKPOINT)
    counts = store.counts()
    error = store.conn.execute(
        "SELECT last_error FROM outbox WHERE destination = ? AND last_error IS NOT NULL AND status <> 'done' "
        "AND status <> 'rejected' ORDER BY updated_at_ms DESC LIMIT 1", (DESTINATION,)).fetchone()
    in_flight = store.conn.execute(
        "SELECT count(DISTINCT nonce) FROM chain_txs WHERE status = 'pending'").fetchone()

    def rows(status: str) -> int:
        return counts.get(f"outbox.{DESTINATION}.{status}", 0)

    dropped = store.dropped_outbox(DESTINATION)

    return {
        "backlog": rows("pending") + rows("in_flight"),
        "dead": rows("dead"),
        "rejected": rows("rejected"),
        "done": rows("done") - dropped,  # delivered: not those an operator dropped
        "dropped": dropped,
        "last_synced_block": checkpoint.block_number if checkpoint else None,
        "transactions_in_flight": int(in_flight[0]),
        "last_error": error[0] if error else None,
        "rejected_records": rejected_records(store),
    }


def chain_seq(store: Store, event_id: str) -> int | None:
    """The record number a gate event was (or will be) sent under; None before its first send."""
    row = store.conn.execute("SELECT s.seq FROM outbox o JOIN chain_seqs s ON s.outbox_id = o.id "
                             "WHERE o.destination = ? AND o.event_id = ?", (DESTINATION, event_id)).fetchone()
    return None if row is None else int(row[0])


@dataclass(frozen=True)
class RecordAudit:
    """How the gate records of one store stand on chain (for the chaos run and the demo)."""

    records: int  # 'chain' outbox rows that are gate records (kinds the contract takes)
    lost: tuple[str, ...]  # event ids not processed on chain (no number, or above the high-water mark)
    rejected: tuple[str, ...]  # event ids the contract rejected (outbox state 'rejected')


def audit_records(conn: sqlite3.Connection, client: RentalClient, gateway: str) -> RecordAudit:
    """Read the store through ``conn`` (read-only is enough) and the gateway's high-water mark."""
    high = client.last_seq(gateway)
    rows = conn.execute("SELECT o.event_id, json_extract(o.payload, '$.kind'), s.seq, o.status FROM outbox o "
                        "LEFT JOIN chain_seqs s ON s.outbox_id = o.id WHERE o.destination = ?",
                        (DESTINATION,)).fetchall()
    records = [(event_id, seq, status) for event_id, kind, seq, status in rows if kind in RECORD_KINDS]
    lost = tuple(e for e, seq, _ in records if seq is None or seq > high)
    rejected = tuple(e for e, _, status in records if status == "rejected")
    return RecordAudit(len(records), lost, rejected)


def rejected_records(store: Store, limit: int = REJECTED_SHOWN) -> list[str]:
    """The newest rejected records, one line each: event id, kind, booking and the contract's reason."""
    lines = []
    for event_id, payload, reason in store.conn.execute(
            "SELECT event_id, payload, last_error FROM outbox WHERE destination = ? AND status = 'rejected' "
            "ORDER BY updated_at_ms DESC, id DESC LIMIT ?", (DESTINATION, limit)):
        fields = json.loads(payload)
        lines.append(f"{event_id} {fields.get('kind')} booking {fields.get('booking_id')}: {reason}")
    return lines


# ---------------------------------------------------------------------- wiring

def connect(rpc_url: str, timeout_s: float = 10.0) -> Web3:
    """The chain client (:func:`client`) of the node at ``rpc_url``, without web3's own retries: the sync
    loop decides when to retry."""
    return client(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s},
                                    exception_retry_configuration=None))


def client(provider: BaseProvider) -> Web3:
    """A web3 client for any EVM chain a lot may use. Without web3's 'validation' middleware, which asks
    the node for eth_chainId around every eth_call (three requests for one view) to check a chain id our
    calls do not carry (transactions are signed locally with the configured chain id and sent raw;
    ``parkgate doctor`` checks the node's). With ``ExtraDataToPOAMiddleware``, without which web3
    refuses every block of a proof-of-authority chain (Polygon PoS, BNB Chain, Clique networks: an
    extraData of 97 bytes, not 32), so neither the sync nor the booking service could read the chain
    time or check for a reorg there; it renames a block's extraData to proofOfAuthorityData on every
    chain, and parkgate reads neither."""
    w3 = Web3(provider)
    w3.middleware_onion.remove("validation")
    w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
    return w3


def service_from_config(cfg: Config, tuning: SyncTuning = SyncTuning(),
                        clock: TrustedClock | None = None) -> SyncService:
    """Open the store, decrypt the gateway key and build the service (call it in the sync thread). The
    store stamps with ``clock``'s best time (the daemon's; by default one of this process, seeded with the
    store's floor), never the bare wall clock (docs/ARCHITECTURE.md, "Time")."""
    chain = cfg.chain
    if not chain.enabled:
        raise SyncError(f"{cfg.source}: chain.enabled is false; nothing to sync")
    if chain.keystore is None:
        raise SyncError(f"{cfg.source}: chain.keystore is not set")
    account = load_account(chain.keystore, read_password(chain.password_file))
    best = clock or TrustedClock(tolerance_ms=cfg.clock.behind_tolerance_s * 1000)
    store = Store(cfg.store_path, busy_timeout_ms=cfg.store.busy_timeout_ms, clock=best.now_ms)
    best.observe(store.clock_floor())
    return SyncService(connect(chain.rpc_url), store, account, chain, cfg.gateway.lot_id, tuning)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m edge.chain.sync --config FILE [--once]``: the sync alone, in the foreground."""
    parser = argparse.ArgumentParser(prog="python -m edge.chain.sync", description=main.__doc__)
    parser.add_argument("--config", required=True, help="the gateway's TOML config")
    parser.add_argument("--once", action="store_true", help="sync until the backlog is empty, then exit")
    parser.add_argument("--batch-size", type=int, default=None, help="override chain.batch_size")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = load_config(args.config)
    if args.batch_size:
        cfg = cfg.model_copy(update={"chain": cfg.chain.model_copy(update={"batch_size": args.batch_size})})
    service = service_from_config(cfg)
    print("sync ready", flush=True)
    if args.once:
        service.run_until_idle()
        print(json.dumps(service.health().as_dict()), flush=True)
        return 0
    stop = threading.Event()
    try:
        service.run(stop)
    except KeyboardInterrupt:
        stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
