"""A node that lies, lags or filters badly (review s13 of the chain sync), on a real anvil: the answers
pass through a :class:`sync_world.Tamper` hook, the node itself is real.

1. an absurd head is refused (counted, alerted), and no step plans more than a bounded number of windows;
   checking the head costs no call while it stays at a height the node has shown;
2. a node behind the blocks we stored is "behind", not a reorg: nothing is rolled back;
3. our own mined batch whose receipt (or transaction) the node does not serve yet is waited for, never
   renumbered and sent twice;
4. a stuck transaction is still replaced after the wall clock stepped back;
5. logs of another lot, and logs marked ``removed``, never reach the cache;
6. a batch is confirmed only by a head the node can show the block of;
7. a mined batch waits for its confirmations, however long the head stays below them: never replaced;
8. one batch costs a bounded number of calls: its receipt is polled with backoff, its confirmations are
   left to the next steps.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from sync_world import (
    HOUR,
    LOT,
    PRICE_PER_HOUR,
    Answer,
    World,
    answer,
    landed_denials,
    record_denied,
    store_path,
    tampered,
    write_config,
)

from edge.chain.sync import SyncService, service_from_config
from edge.chain.syncplan import lot_bytes
from edge.config import load_config
from edge.store import Store

DAY_MS = 24 * HOUR * 1000


def _mine(world: World, blocks: int) -> None:
    for _ in range(blocks):
        world.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def _tx_statuses(store: Store) -> list[str]:
    return [s for (s,) in store.conn.execute("SELECT status FROM chain_txs ORDER BY rowid")]


# -- 1. absurd head, bounded windows -----------------------------------------------------------------

def test_a_head_the_node_has_no_block_for_is_refused_counted_and_alerted(world: World, store: Store) -> None:
    booking = world.book()
    lie: dict[str, int | None] = {"head": None}

    def hook(method: str, params: Any, real: Any) -> Answer:
        if lie["head"] is not None and method == "eth_blockNumber":
            return answer(hex(lie["head"]))
        return real()

    service = world.service(store, w3=tampered(world, hook), log_window_blocks=1)
    service.step_down()
    synced = store.get_checkpoint("chain.down")
    # Far enough to be absurd, near enough that planning every window (the old code) stays affordable.
    lie["head"] = world.w3.eth.block_number + 10**6
    assert service.step_down() == 0
    health = service.health()
    assert health.extra["implausible_heads_total"] == 1
    assert "no block" in health.alerts["implausible_head"]
    assert store.get_checkpoint("chain.down") == synced and store.booking(str(booking)) is not None
    lie["head"] = None
    service.step_down()
    assert "implausible_head" not in service.health().alerts


def test_an_idle_step_asks_the_node_for_its_head_and_one_block_only(world: World, store: Store) -> None:
    asked: Counter[str] = Counter()

    def hook(method: str, params: Any, real: Any) -> Answer:
        asked[method] += 1
        return real()

    service = world.service(store, w3=tampered(world, hook), confirmations=2)
    _mine(world, 2)
    assert service.step()  # caught up: the node has shown its head
    asked.clear()
    assert service.step()  # nothing new on chain, nothing to upload
    # The head, and the newest stored block for the reorg check (the head's block was fetched before).
    assert asked == {"eth_blockNumber": 1, "eth_getBlockByNumber": 1}


def test_one_step_syncs_a_bounded_number_of_windows_and_the_run_catches_up(world: World,
                                                                         store: Store) -> None:
    booking = world.book()
    _mine(world, 5)
    service = world.service(store, log_window_blocks=1, max_windows_per_step=3)
    service.step_down()
    assert store.get_checkpoint("chain.down").block_number == world.deploy_block + 2
    windows = world.w3.eth.block_number - world.deploy_block + 1  # one block each
    assert service.health().extra["down_windows_left"] == windows - 3
    service.run_until_idle()
    assert store.get_checkpoint("chain.down").block_number == world.w3.eth.block_number
    assert store.booking(str(booking)).status == "requested"
    assert service.health().extra["down_windows_left"] == 0


# -- 2. a node behind us -------------------------------------------------------------------------------

def test_a_lagging_node_is_reported_behind_and_rolls_back_nothing(world: World, store: Store) -> None:
    lag = {"blocks": 0}

    def hook(method: str, params: Any, real: Any) -> Answer:
        head = world.w3.eth.block_number - lag["blocks"]  # this backend has the blocks up to head only
        if lag["blocks"] and method == "eth_blockNumber":
            return answer(hex(head))
        if lag["blocks"] and method == "eth_getBlockByNumber" and params[0].startswith("0x") \
                and int(params[0], 16) > head:
            return answer(None)
        return real()

    service = world.service(store, w3=tampered(world, hook), confirmations=2)
    booking = world.book()
    _mine(world, 3)  # 3 confirmations: final for this gateway
    assert service.step() and store.booking(str(booking)).status == "requested"
    lag["blocks"] = 5
    assert service.step()
    health = service.health()
    assert health.reorgs_total == 0 and health.extra["node_behind_total"] == 1
    assert "behind" in health.alerts["node_behind"]
    assert store.booking(str(booking)).status == "requested"  # a car with this booking still gets in
    lag["blocks"] = 0
    assert service.step()
    assert "node_behind" not in service.health().alerts and service.health().reorgs_total == 0
    assert store.booking(str(booking)).status == "requested"


# -- 3. our own batch without a receipt -------------------------------------------------------------------

class HidesFirstBatch:
    """A node that does not serve the first batch's receipt (and, with ``hide_tx``, the transaction
    itself) until :meth:`reveal`: a backend that indexes them late."""

    def __init__(self, hide_tx: bool) -> None:
        self.methods = {"eth_getTransactionReceipt"} | ({"eth_getTransactionByHash"} if hide_tx else set())
        self.hidden: set[str] = set()
        self.armed = True

    def hook(self, method: str, params: Any, real: Any) -> Answer:
        if method in self.methods and params[0] in self.hidden:
            return answer(None)
        result: Answer = real()
        if method == "eth_sendRawTransaction" and self.armed and "result" in result:
            self.hidden.add(result["result"])
            self.armed = False
        return result

    def reveal(self) -> None:
        self.hidden.clear()


def _receiptless_batch_lands_once(world: World, store: Store, node: HidesFirstBatch) -> SyncService:
    service = world.service(store, w3=tampered(world, node.hook), receipt_wait_s=0.2)
    recorded = record_denied(store, 3, world.now())
    for _ in range(3):
        assert service.step()
    assert landed_denials(world.w3, world.admin, world.deploy_block) == [1, 2, 3]
    assert len(_tx_statuses(store)) == 1  # nothing renumbered, nothing sent again
    assert "foreign_records" not in service.health().alerts
    node.reveal()
    service.run_until_idle()
    assert landed_denials(world.w3, world.admin, world.deploy_block) == [1, 2, 3]  # each exactly once
    assert {store.outbox_row("chain", e).status for e in recorded} == {"done"}
    assert _tx_statuses(store) == ["mined"]
    assert "renumbered_total" not in service.health().extra
    assert "foreign_records" not in service.health().alerts
    return service


def test_a_mined_batch_whose_receipt_comes_late_is_waited_for_not_sent_twice(world: World,
                                                                           store: Store) -> None:
    service = _receiptless_batch_lands_once(world, store, HidesFirstBatch(hide_tx=False))
    assert service.health().extra["receipt_waits_total"] >= 1


def test_a_mined_batch_the_node_does_not_know_yet_is_not_renumbered(world: World, store: Store) -> None:
    service = _receiptless_batch_lands_once(world, store, HidesFirstBatch(hide_tx=True))
    assert service.health().extra["receipt_waits_total"] >= 1


# -- 4. stuck transactions and the wall clock -----------------------------------------------------------

def _stuck_then_replaced(world: World, store: Store, service: SyncService, steps: list[Any]) -> None:
    """Send a batch that does not mine, run ``steps`` (each a clock change) before one more step_up each,
    expect the replacement only after the last; then let the rows land once."""
    provider = world.w3.provider
    recorded = record_denied(store, 2, world.now())
    provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
    try:
        assert service.step_up() == 0  # sent, not mined
        for index, step in enumerate(steps):
            step()
            service.step_up()
            assert len(_tx_statuses(store)) == (2 if index == len(steps) - 1 else 1), index
    finally:
        provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
    _mine(world, 1)
    service.run_until_idle()
    assert {store.outbox_row("chain", e).status for e in recorded} == {"done"}
    assert landed_denials(world.w3, world.admin, world.deploy_block) == [1, 2]


def test_a_transaction_sent_with_the_clock_ahead_is_replaced_once_stuck_after_the_step_back(
        world: World, tmp_path: Path) -> None:
    wall = {"offset_ms": DAY_MS}  # the clock runs a day ahead when the batch is sent

    def clock() -> int:
        return time.time_ns() // 1_000_000 + wall["offset_ms"]

    def step_back_then_ten_minutes() -> None:
        wall["offset_ms"] = 10 * 60_000

    def another_minute() -> None:
        wall["offset_ms"] += 61_000

    with Store(tmp_path / "stepped.sqlite", clock=clock) as store:
        service = world.service(store, receipt_wait_s=0.1, stuck_after_s=60.0)
        # the stamp in the future restarts the stuck timer (once); a minute later it is replaced
        _stuck_then_replaced(world, store, service, [step_back_then_ten_minutes, another_minute])


def test_a_transaction_this_process_sent_ages_on_the_monotonic_clock(world: World, tmp_path: Path) -> None:
    wall, mono = {"offset_ms": HOUR * 1000}, {"ms": 0}

    def monotonic_passes() -> None:
        wall["offset_ms"] = 0  # NTP steps the clock an hour back...
        mono["ms"] += 61_000  # ...while a minute passes

    def clock() -> int:
        return time.time_ns() // 1_000_000 + wall["offset_ms"]

    with Store(tmp_path / "mono.sqlite", clock=clock) as store:
        service = SyncService(world.w3, store, world.gateway, **world.settings(receipt_wait_s=0.1,
                                                                               stuck_after_s=60.0),
                              monotonic=lambda: mono["ms"])
        _stuck_then_replaced(world, store, service, [monotonic_passes])


def test_the_sync_process_stamps_with_the_trusted_clock_never_behind_the_stores_floor(
        world: World, tmp_path: Path) -> None:
    config = write_config(tmp_path, world, world.w3.provider.endpoint_uri)  # type: ignore[attr-defined]
    floor = time.time_ns() // 1_000_000 + DAY_MS  # the store saw a time a day ahead of this clock
    with Store(store_path(tmp_path)) as store:
        store.raise_clock_floor(floor)
    service = service_from_config(load_config(config))
    try:
        assert service.store.clock() >= floor
    finally:
        service.store.close()


# -- 5. logs that are not this lot's -----------------------------------------------------------------------

def test_logs_of_another_lot_and_removed_logs_are_dropped_and_counted(world: World, store: Store) -> None:
    world.admin.register_lot(lot_bytes("LOT-2"), "u0yjjd")
    space = world.owner.register_space(lot_bytes("LOT-2"), "L-2/B01").return_value
    world.admin.approve_space(space)
    start = world.now() + 600
    rental = world.owner.create_rental_event(space, start, start + 6 * HOUR, PRICE_PER_HOUR).return_value
    commitment = bytes.fromhex(world.commitment()[2:])  # the commitment LOT-1's booking service issued
    elsewhere = world.renter.request_rental(rental, start, start + 2 * HOUR, commitment).return_value
    own = world.book("O-WN 1")
    withdrawn = world.book("R-EM 2")
    withdrawn_block = world.w3.eth.block_number

    def hook(method: str, params: Any, real: Any) -> Answer:
        if method != "eth_getLogs":
            return real()
        result: Answer = real([dict(params[0], topics=params[0]["topics"][:1])])  # ignores the lot filter
        for entry in result.get("result", []):
            if int(entry["blockNumber"], 16) == withdrawn_block:
                entry["removed"] = True
        return result

    service = world.service(store, w3=tampered(world, hook))
    assert service.step()
    assert store.booking(str(elsewhere)) is None
    assert [b.booking_id for b in store.bookings_for_commitment(LOT, world.commitment())] == []
    assert store.booking(str(own)).status == "requested"
    assert store.booking(str(withdrawn)) is None
    extra = service.health().extra
    assert extra["foreign_lot_logs"] >= 2 and extra["removed_logs"] == 1


def test_a_lower_head_is_checked_too(world: World, store: Store) -> None:
    """After a reorg to a shorter chain or a failover to a node behind, the head goes down: a lower head
    the node has no block for is refused like a higher one (it could confirm an upload)."""
    lie: dict[str, int | None] = {"head": None}

    def hook(method: str, params: Any, real: Any) -> Answer:
        if lie["head"] is not None and method == "eth_blockNumber":
            return answer(hex(lie["head"]))
        if lie["head"] is not None and method == "eth_getBlockByNumber" and params[0] == hex(lie["head"]):
            return answer(None)  # a node that says a head it cannot show
        return real()

    _mine(world, 3)
    service = world.service(store, w3=tampered(world, hook))
    service.step_down()
    lie["head"] = world.w3.eth.block_number - 1
    assert service.step_down() == 0
    service.step_down()
    health = service.health()
    assert "no block" in health.alerts["implausible_head"]
    assert health.extra["implausible_heads_total"] == 1  # one head, counted once
    lie["head"] = None
    service.step_down()
    assert "implausible_head" not in service.health().alerts


# -- 6. confirmations against a head the node can show ---------------------------------------------------

def test_a_batch_is_not_confirmed_by_a_head_the_node_has_no_block_for(world: World, store: Store) -> None:
    lie = {"head": False}

    def hook(method: str, params: Any, real: Any) -> Answer:
        if lie["head"] and method == "eth_blockNumber":
            return answer(hex(2**62))
        return real()

    service = world.service(store, w3=tampered(world, hook), confirmations=2, receipt_wait_s=0.2)
    recorded = record_denied(store, 3, world.now())
    snapshot = world.w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    lie["head"] = True
    service.step()  # the batch is mined with no block on top of it
    assert {store.outbox_row("chain", e).status for e in recorded} == {"in_flight"}
    # the down step's head and the upload's receipt polls: one head, counted once
    assert service.health().extra["implausible_heads_total"] == 1
    # A reorg orphans the batch's block: the rows, not done, are sent again and land once.
    assert world.w3.provider.make_request("evm_revert", [snapshot])["result"] is True  # type: ignore[arg-type]
    lie["head"] = False
    assert service.step()  # the node no longer knows the transaction: the same signed bytes again
    _mine(world, 2)
    assert service.step()
    assert landed_denials(world.w3, world.admin, world.deploy_block) == [1, 2, 3]
    assert {store.outbox_row("chain", e).status for e in recorded} == {"done"}
    assert "implausible_head" not in service.health().alerts


# -- 7. a mined batch under a head that does not move -----------------------------------------------------

def test_a_mined_batch_waits_for_its_confirmations_under_a_frozen_head_and_is_never_replaced(
        world: World, store: Store) -> None:
    frozen: dict[str, int | None] = {"head": None}

    def hook(method: str, params: Any, real: Any) -> Answer:
        if frozen["head"] is not None and method == "eth_blockNumber":
            return answer(hex(frozen["head"]))  # a backend that stopped following the chain
        return real()

    service = world.service(store, w3=tampered(world, hook), confirmations=1, receipt_wait_s=0.1,
                            stuck_after_s=0.0)  # any transaction without a receipt is stuck at once
    recorded = record_denied(store, 3, world.now())
    frozen["head"] = world.w3.eth.block_number
    for _ in range(4):
        assert service.step()  # the batch is mined at once (automine), above the frozen head
    assert _tx_statuses(store) == ["pending"]  # one transaction: a mined nonce is not bumped
    assert {store.outbox_row("chain", e).status for e in recorded} == {"in_flight"}
    alerts = service.health().alerts
    assert "nonce_conflict" not in alerts
    assert "is mined but has waited" in alerts["confirmations_waiting"]  # its records wait with it: said
    frozen["head"] = None
    _mine(world, 1)
    assert service.step()
    assert "confirmations_waiting" not in service.health().alerts
    assert _tx_statuses(store) == ["mined"]
    assert {store.outbox_row("chain", e).status for e in recorded} == {"done"}
    assert landed_denials(world.w3, world.admin, world.deploy_block) == [1, 2, 3]


# -- 8. what one batch costs in RPC calls ------------------------------------------------------------------

def _counted(world: World, store: Store, asked: Counter[str], **overrides: object) -> SyncService:
    """A service whose every RPC call is counted in ``asked``, caught up, with the default receipt wait."""
    def hook(method: str, params: Any, real: Any) -> Answer:
        asked[method] += 1
        return real()

    service = world.service(store, w3=tampered(world, hook), receipt_wait_s=2.0, **overrides)
    assert service.step()
    return service


def test_a_batch_waiting_for_its_confirmations_asks_for_its_receipt_once_a_step(world: World,
                                                                                store: Store) -> None:
    asked: Counter[str] = Counter()
    service = _counted(world, store, asked, confirmations=2)
    recorded = record_denied(store, 3, world.now())
    asked.clear()
    assert service.step()  # sent and mined at once (automine); its 2 confirmations take 2 blocks
    _mine(world, 2)
    assert service.step()
    assert {store.outbox_row("chain", e).status for e in recorded} == {"done"}
    # Sending, checking the head and settling: 24 calls (it was ~230, 3 every 20 ms for receipt_wait_s).
    # A receipt once in each step; on a loaded box the node may index it a poll after the block (one more:
    # a fresh clone's make test saw 3 once). The old wait asked about 70 times.
    assert asked["eth_getTransactionReceipt"] <= 4 and sum(asked.values()) <= 30, asked


def test_a_batch_not_mined_yet_is_polled_with_backoff(world: World, store: Store) -> None:
    asked: Counter[str] = Counter()
    service = _counted(world, store, asked, confirmations=0)
    recorded = record_denied(store, 3, world.now())
    provider = world.w3.provider
    provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
    try:
        asked.clear()
        assert service.step_up() == 0  # sent; waits receipt_wait_s (2 s) for a block that does not come
    finally:
        provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
    # Backoff from 20 ms to 0.25 s: about 14 polls, 20 at most (it was one every 20 ms: ~80 here).
    assert asked["eth_getTransactionReceipt"] <= 21, asked
    _mine(world, 1)
    assert service.step()
    assert {store.outbox_row("chain", e).status for e in recorded} == {"done"}


def test_a_batch_at_confirmations_0_is_done_in_the_step_that_sends_it(world: World, store: Store) -> None:
    asked: Counter[str] = Counter()
    service = _counted(world, store, asked, confirmations=0)
    recorded = record_denied(store, 3, world.now())
    asked.clear()
    assert service.step()
    assert {store.outbox_row("chain", e).status for e in recorded} == {"done"}  # no poll interval later
    assert asked["eth_getTransactionReceipt"] == 1, asked
