"""Offline-tolerant sync between the gateway's store and the rental contract (imperative shell).

Two directions, each resumable from what the store holds:

* **down** (:meth:`SyncService.step_down`): this lot's contract logs (rental events, first and second
  associations, booking lifecycle) fetched with ``eth_getLogs`` in bounded block windows, applied once
  they have ``confirmations`` blocks on top; the hashes of the blocks used are stored, and a block
  whose hash changed (reorg) rolls the cache back to the common ancestor before syncing again.
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
import json
import logging
import random
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import BlockNotFound, ContractLogicError, TransactionNotFound

from edge.chain.contract import DecodedEvent, RentalClient, decode_revert
from edge.chain.keystore import load_account, read_password
from edge.chain.syncplan import (
    BOOKING_STATUS_OF_EVENT,
    RECORD_KINDS,
    Fees,
    Origin,
    assemble_batch,
    backoff_delay,
    booking_row,
    bumped_fees,
    chain_event_id,
    common_ancestor,
    confirmed_head,
    gwei,
    initial_fees,
    log_order,
    lot_bytes,
    moved,
    plan_windows,
    record_batch_calldata,
    rental_event_row,
)
from edge.config import Config, load_config
from edge.store import Store, StoreError
from edge.store.rows import ChainBlock, Lot, OutboxRow, Space

log = logging.getLogger(__name__)

DESTINATION = "chain"
DOWN_CHECKPOINT = "chain.down"
# Events whose indexed lotId is the third / second topic argument (topic index 3 / 2).
LOT_AT_TOPIC3 = ("RentalEventCreated", "FirstAssociation", "RentalRequested", "SecondAssociation")
LOT_AT_TOPIC2 = ("RentalEventCancelled", "CheckedIn", "CheckedOut", "Settled", "BookingCancelled",
                 "BookingExpired")


NONCE_USED_NO_RECEIPT = -1


class SyncError(Exception):
    """The sync cannot make progress for a reason an operator must fix; the message says what."""


@dataclass(frozen=True)
class SyncSettings:
    lot_id: str  # gateway.lot_id: the store's lot; the chain's lot id is derived from it
    contract_address: str
    chain_id: int
    confirmations: int = 2
    log_window_blocks: int = 2000
    batch_size: int = 20
    max_fee_wei: int = gwei(50)
    priority_fee_wei: int = gwei(1.5)
    poll_interval_s: float = 2.0
    upload_kinds: frozenset[str] = frozenset(RECORD_KINDS)
    start_block: int = 0
    stuck_after_s: float = 60.0
    receipt_wait_s: float = 2.0
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 300.0
    keep_history_blocks: int = 256

    @classmethod
    def from_config(cls, cfg: Config, **overrides: Any) -> SyncSettings:
        chain = cfg.chain
        base = cls(lot_id=cfg.gateway.lot_id, contract_address=chain.contract_address,
                   chain_id=chain.chain_id, confirmations=chain.confirmations,
                   log_window_blocks=chain.log_window_blocks,
                   batch_size=chain.batch_size, max_fee_wei=gwei(chain.max_fee_gwei),
                   priority_fee_wei=gwei(chain.priority_fee_gwei), poll_interval_s=chain.poll_interval_s)
        return replace(base, **overrides)


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

    def __init__(self, w3: Web3, store: Store, account: LocalAccount, settings: SyncSettings,
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None) -> None:
        self.w3 = w3
        self.store = store
        self.account = account
        self.settings = settings
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.client = RentalClient(w3, settings.contract_address, account)
        self.lot = lot_bytes(settings.lot_id)
        self.health_state = SyncHealth()
        self._chain_checked = False
        self._broadcast_here: set[str] = set()  # tx hashes this instance handed to the node

    # ------------------------------------------------------------------ health

    def backlog(self) -> int:
        row = self.store.conn.execute("SELECT count(*) FROM outbox WHERE destination = ? AND status IN "
                                      "('pending', 'in_flight')", (DESTINATION,)).fetchone()
        return int(row[0])

    def health(self) -> SyncHealth:
        checkpoint = self.store.get_checkpoint(DOWN_CHECKPOINT)
        self.health_state.backlog = self.backlog()
        self.health_state.last_synced_block = checkpoint.block_number if checkpoint else None
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

    def run(self, stop: threading.Event) -> None:
        """Sync until ``stop`` is set: poll every ``poll_interval_s`` (at once while a backlog is left),
        back off exponentially with jitter while the node fails."""
        while not stop.is_set():
            if self.step():
                busy = self.backlog() and not self._waiting_for_receipt()
                delay = 0.0 if busy else self.settings.poll_interval_s
            else:
                delay = backoff_delay(self.health_state.consecutive_failures, self.settings.backoff_base_s,
                                      self.settings.backoff_cap_s, self.rng)
            stop.wait(delay)

    def run_until_idle(self, max_failures: int = 20) -> None:
        """Sync until the backlog is empty and the cache caught up (tests, ``--once``)."""
        while True:
            if not self.step():
                if self.health_state.consecutive_failures >= max_failures:
                    raise SyncError(f"giving up after {max_failures} failures: "
                                    f"{self.health_state.last_error}")
                self.sleep(backoff_delay(self.health_state.consecutive_failures, 0.05, 1.0, self.rng))
                continue
            if not self.backlog():
                return
            if self._waiting_for_receipt():
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
        if chain_id != self.settings.chain_id:
            raise SyncError(f"the node at the RPC URL is chain {chain_id}, config chain.chain_id is "
                            f"{self.settings.chain_id}; point chain.rpc_url at the right network")
        if not self.w3.eth.get_code(self.client.address):
            raise SyncError(f"no contract at chain.contract_address {self.client.address} "
                            f"on chain {chain_id}")
        self._chain_checked = True

    # ------------------------------------------------------------------ down

    def step_down(self) -> int:
        """Detect a reorg, then apply confirmed logs of this lot up to the confirmed head."""
        head = self.w3.eth.block_number
        self.health_state.head_block = head
        self._handle_reorg()
        checkpoint = self.store.get_checkpoint(DOWN_CHECKPOINT)
        first = checkpoint.block_number + 1 if checkpoint else self.settings.start_block
        applied = 0
        windows = plan_windows(first, confirmed_head(head, self.settings.confirmations),
                               self.settings.log_window_blocks)
        for start, end in windows:
            applied += self._sync_window(start, end)
        self.health_state.applied_logs_total += applied
        if windows:  # bound chain_history and chain_blocks to the reorg horizon
            self.store.prune_chain_history(max(head - self.settings.keep_history_blocks, 0))
        return applied

    def _handle_reorg(self) -> None:
        stored = [ChainBlock(*r) for r in self.store.conn.execute(
            "SELECT number, hash, parent_hash FROM chain_blocks ORDER BY number DESC LIMIT ?",
            (self.settings.keep_history_blocks,))]
        ancestor = common_ancestor(stored, self._chain_hash)
        if ancestor is None:
            return
        target = max(ancestor, self.settings.start_block - 1, 0)
        undone = self.store.rollback_to_block(target)
        self.health_state.reorgs_total += 1
        log.warning("chain reorg below block %d: rolled back to block %d (%d rows restored or removed)",
                    stored[0].number, target, undone)

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
            logs += self.w3.eth.get_logs({"address": self.client.address, "fromBlock": start, "toBlock": end,
                                          "topics": topics})
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
        if self._log_hashes.get((event.block_number, event.log_index)) != block_hash:
            raise SyncError(f"block {event.block_number} changed while syncing (reorg in progress); retrying")
        origin = Origin(event.block_number, block_hash, event.log_index, _hex(event.tx_hash))
        args, lot = event.args, self.settings.lot_id
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
        lot = self.store.lot(self.settings.lot_id) or Lot(self.settings.lot_id)
        self.store.upsert_lot(replace(lot, geohash=str(args["geohash"])))
        self.store.upsert_space(Space(space_id=str(args["spaceId"]), lot_id=self.settings.lot_id,
                                      bay=str(args["location"]), geohash=str(args["geohash"])))

    def _unknown(self, what: str, ident: int) -> int:
        """A log about something created before ``start_block``: counted and dropped."""
        key = f"unknown_{what.replace(' ', '_')}_logs"
        self.health_state.extra[key] = self.health_state.extra.get(key, 0) + 1
        log.info("ignoring a log about %s %s that is not in the cache (created before the start block)",
                 what, ident)
        return 0

    # ------------------------------------------------------------------ up

    def step_up(self) -> int:
        """Settle the transaction in flight, or send the next batch. Returns rows marked done."""
        open_group = self._open_txs()
        if open_group:
            return self._settle(open_group)
        rows = self.store.pending_outbox(DESTINATION, self.settings.batch_size)
        if not rows:
            return 0
        done = self._reconcile_resent(rows)
        if done:
            return done
        batch = assemble_batch(self.account.address, rows, self.settings.upload_kinds)
        with self.store.transaction():
            for row in batch.skipped:
                self.store.mark_outbox_done([row.id], f"not-uploaded:{row.payload.get('kind')}")
            for row, reason in batch.poison:
                self.store.mark_outbox_dead([row.id], reason)
        if not batch.records:
            return len(batch.skipped)
        self._send_new([r.id for r in batch.rows], record_batch_calldata(batch.records))
        return len(batch.skipped) + self._settle(self._open_txs())

    def _reconcile_resent(self, rows: Sequence[OutboxRow]) -> int:
        """Rows sent before (their transaction vanished or failed) that the contract already holds are
        marked done without sending them again."""
        tried = [r for r in rows if r.attempts > 0]
        gateway = self.account.address
        landed = [r.id for r in tried if self.client.is_processed(chain_event_id(gateway, r.event_id))]
        if landed:
            self.store.mark_outbox_done(landed, "processed-on-chain")
        return len(landed)

    def _open_txs(self) -> list[OpenTx]:
        rows = self.store.conn.execute(
            "SELECT tx_hash, nonce, raw_tx, outbox_ids, max_fee_wei, priority_fee_wei, sent_at_ms "
            "FROM chain_txs WHERE status = 'pending' ORDER BY nonce, sent_at_ms, rowid").fetchall()
        return [OpenTx(h, n, raw, tuple(json.loads(ids)), Fees(int(mf), int(pf)), at)
                for h, n, raw, ids, mf, pf, at in rows]

    def _fees(self) -> tuple[int, int]:
        base = int(self.w3.eth.get_block("latest").get("baseFeePerGas", 0))
        return base, self.settings.priority_fee_wei

    def _call_tx(self, data: bytes, nonce: int, fees: Fees) -> dict[str, Any]:
        """A signed-ready EIP-1559 transaction calling the contract with ``data`` (gas estimated)."""
        call = {"from": self.account.address, "to": self.client.address, "data": _hex(data), "value": 0}
        try:
            gas = self.w3.eth.estimate_gas(call)  # type: ignore[arg-type]
        except ContractLogicError as exc:
            revert = decode_revert(self.client.abi, exc.data if isinstance(exc.data, str | bytes) else None)
            raise SyncError(f"recordGateEvents would revert ({revert}); is {self.account.address} a gateway "
                            "of this lot (setGateway)?") from exc
        return {"to": call["to"], "data": call["data"], "value": 0, "gas": gas * 6 // 5 + 21_000,
                "nonce": nonce, "maxFeePerGas": fees.max_fee, "maxPriorityFeePerGas": fees.priority_fee,
                "chainId": self.settings.chain_id, "type": 2}

    def _send_new(self, outbox_ids: list[int], data: bytes) -> None:
        base, tip = self._fees()
        fees = initial_fees(base, tip, self.settings.max_fee_wei)
        nonce = self.w3.eth.get_transaction_count(self.account.address, "pending")
        self._sign_record_broadcast(self._call_tx(data, nonce, fees), nonce, outbox_ids, fees)

    def _sign_record_broadcast(self, tx: dict[str, Any], nonce: int, outbox_ids: Sequence[int],
                               fees: Fees) -> str:
        signed = self.account.sign_transaction(tx)
        tx_hash, raw = _hex(signed.hash), _hex(signed.raw_transaction)
        with self.store.transaction() as conn:  # durable BEFORE the node sees it
            conn.execute("INSERT INTO chain_txs (tx_hash, nonce, raw_tx, outbox_ids, max_fee_wei, "
                         "priority_fee_wei, sent_at_ms) VALUES (?,?,?,?,?,?,?)",
                         (tx_hash, nonce, raw, json.dumps(list(outbox_ids)), str(fees.max_fee),
                          str(fees.priority_fee), self.store.clock()))
            self.store.mark_outbox_in_flight(list(outbox_ids), sent_ref=tx_hash)
        self._broadcast_here.add(tx_hash)
        self._broadcast(raw)
        return tx_hash

    def _broadcast(self, raw: str) -> None:
        try:
            self.w3.eth.send_raw_transaction(raw)
        except ValueError as exc:  # node said no: "already known" is fine, the rest is settled later
            text = str(exc).lower()
            if "already known" not in text and "already imported" not in text:
                log.warning("node refused a broadcast (settled on the next step): %s", exc)

    def _settle(self, group: list[OpenTx]) -> int:
        """Resolve the nonce in flight: mined (mark done), consumed by something else (check each
        event with isProcessed), stuck (replace with bumped fees) or still pending (wait)."""
        newest = group[-1]
        if newest.tx_hash not in self._broadcast_here and not self._node_knows(newest.tx_hash):
            self._broadcast(newest.raw_tx)  # signed by an earlier run that died before the node saw it
        self._broadcast_here.add(newest.tx_hash)
        deadline = time.monotonic() + self.settings.receipt_wait_s
        while True:
            outcome = self._try_resolve(group)
            if (outcome is not None and outcome != NONCE_USED_NO_RECEIPT) or time.monotonic() >= deadline:
                break
            self.sleep(0.02)
        if outcome == NONCE_USED_NO_RECEIPT:
            # Still no receipt for any of our hashes (a node may index receipts a moment after the
            # nonce moves): give the rows back; the next step asks isProcessed before resending any.
            self._close_group(group[0].nonce, list(group[-1].outbox_ids),
                              error=f"nonce {group[0].nonce} used without a known receipt; rechecking")
            return 0
        if outcome is None:
            self._maybe_replace(group)
            return 0
        return outcome

    def _receipt(self, tx_hash: str) -> Any:
        try:
            return self.w3.eth.get_transaction_receipt(tx_hash)
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
            if receipt["blockNumber"] + self.settings.confirmations > self.w3.eth.block_number:
                return None  # mined, not yet confirmed
            if receipt["status"] != 1:
                self._close_group(nonce, ids, error=f"transaction {tx.tx_hash} reverted")
                raise SyncError(f"recordGateEvents transaction {tx.tx_hash} reverted; rows will be retried")
            self._close_group(nonce, ids, mined=tx.tx_hash)
            self.health_state.uploaded_total += len(ids)
            self.health_state.last_upload_tx = tx.tx_hash
            return len(ids)
        return NONCE_USED_NO_RECEIPT if nonce_used else None

    def _close_group(self, nonce: int, ids: list[int], mined: str | None = None, error: str = "") -> None:
        """Finish the nonce in flight: rows done with the mined hash, or back to pending with ``error``."""
        with self.store.transaction() as conn:
            conn.execute("UPDATE chain_txs SET status = CASE WHEN tx_hash = ? THEN 'mined' WHEN ? THEN "
                         "'replaced' ELSE 'dropped' END WHERE nonce = ? AND status = 'pending'",
                         (mined, mined is not None, nonce))
            if mined:
                self.store.mark_outbox_done(ids, mined)
            else:
                self.store.mark_outbox_failed(ids, error)

    def _maybe_replace(self, group: list[OpenTx]) -> None:
        newest = group[-1]
        if not self._node_knows(newest.tx_hash):
            self._broadcast(newest.raw_tx)  # lost by the node (restart, crash before broadcast)
        age_s = (self.store.clock() - newest.sent_at_ms) / 1000
        if age_s < self.settings.stuck_after_s:
            return
        base, tip = self._fees()
        fees = bumped_fees(newest.fees, base, tip, self.settings.max_fee_wei)
        if fees is None:
            raise SyncError(f"tx {newest.tx_hash} (nonce {newest.nonce}) is stuck; a +12.5% "
                            "fee bump would pass chain.max_fee_gwei; raise it or wait for a lower base fee")
        replacement = self._rebuild(newest, fees)
        new_hash = self._sign_record_broadcast(replacement, newest.nonce, newest.outbox_ids, fees)
        log.info("replaced stuck transaction %s with %s (nonce %d, max fee %d wei)", newest.tx_hash, new_hash,
                 newest.nonce, fees.max_fee)

    def _rebuild(self, old: OpenTx, fees: Fees) -> dict[str, Any]:
        """The same call (same rows, same nonce) with new fees, rebuilt from the outbox rows."""
        wanted = set(old.outbox_ids)
        rows = [r for r in self.store.pending_outbox(DESTINATION, len(wanted) + self.settings.batch_size)
                if r.id in wanted]
        batch = assemble_batch(self.account.address, rows, self.settings.upload_kinds)
        return self._call_tx(record_batch_calldata(batch.records), old.nonce, fees)

    def _node_knows(self, tx_hash: str) -> bool:
        try:
            self.w3.eth.get_transaction(tx_hash)
        except TransactionNotFound:
            return False
        return True

    def _waiting_for_receipt(self) -> bool:
        return bool(self._open_txs())


def stored_status(store: Store) -> dict[str, Any]:
    """The sync's state as the store holds it (for ``parkgate chain status`` in another process):
    backlog, last synced block, transactions in flight and the newest upload error."""
    checkpoint = store.get_checkpoint(DOWN_CHECKPOINT)
    counts = store.counts()
    error = store.conn.execute(
        "SELECT last_error FROM outbox WHERE destination = ? AND last_error IS NOT NULL AND status <> 'done' "
        "ORDER BY updated_at_ms DESC LIMIT 1", (DESTINATION,)).fetchone()
    in_flight = store.conn.execute(
        "SELECT count(DISTINCT nonce) FROM chain_txs WHERE status = 'pending'").fetchone()

    def rows(status: str) -> int:
        return counts.get(f"outbox.{DESTINATION}.{status}", 0)

    return {
        "backlog": rows("pending") + rows("in_flight"),
        "dead": rows("dead"),
        "done": rows("done"),
        "last_synced_block": checkpoint.block_number if checkpoint else None,
        "transactions_in_flight": int(in_flight[0]),
        "last_error": error[0] if error else None,
    }


# ---------------------------------------------------------------------- wiring

def connect(rpc_url: str, timeout_s: float = 10.0) -> Web3:
    """A web3 client without web3's own retries: the sync loop decides when to retry."""
    return Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s},
                                  exception_retry_configuration=None))


def service_from_config(cfg: Config, **overrides: Any) -> SyncService:
    """Open the store, decrypt the gateway key and build the service (call it in the sync thread)."""
    chain = cfg.chain
    if not chain.enabled:
        raise SyncError(f"{cfg.source}: chain.enabled is false; nothing to sync")
    if chain.keystore is None:
        raise SyncError(f"{cfg.source}: chain.keystore is not set")
    account = load_account(chain.keystore, read_password(chain.password_file))
    store = Store(cfg.store_path, busy_timeout_ms=cfg.store.busy_timeout_ms)
    return SyncService(connect(chain.rpc_url), store, account, SyncSettings.from_config(cfg, **overrides))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m edge.chain.sync --config FILE [--once]``: the sync alone, in the foreground."""
    parser = argparse.ArgumentParser(prog="python -m edge.chain.sync", description=main.__doc__)
    parser.add_argument("--config", required=True, help="the gateway's TOML config")
    parser.add_argument("--once", action="store_true", help="sync until the backlog is empty, then exit")
    parser.add_argument("--batch-size", type=int, default=None, help="override chain.batch_size")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides = {"batch_size": args.batch_size} if args.batch_size else {}
    service = service_from_config(load_config(args.config), **overrides)
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
