"""Crashes at the two critical points of an upload, made deterministic: the process "dies" (a
BaseException the service cannot catch) right before the broadcast and right after it. A fresh
service on the same store then finishes the job with the SAME signed transaction, never a second one."""

from __future__ import annotations

import pytest
from sync_world import World, landed_denials, record_denied

from edge.chain.sync import SyncService, chain_seq
from edge.store import Store


class Crash(BaseException):
    """Stands for SIGKILL at one exact line."""


class DiesBeforeBroadcast(SyncService):
    def _broadcast(self, raw: str) -> None:
        raise Crash


class DiesAfterBroadcast(SyncService):
    def _broadcast(self, raw: str) -> None:
        super()._broadcast(raw)
        raise Crash


@pytest.mark.parametrize("dying", [DiesBeforeBroadcast, DiesAfterBroadcast])
def test_restart_after_a_crash_reuses_the_recorded_transaction(world: World, store: Store,
                                                               dying: type[SyncService]) -> None:
    recorded = record_denied(store, 4, world.now())
    with pytest.raises(Crash):
        dying(world.w3, store, world.gateway, **world.settings()).step_up()
    (signed,) = store.conn.execute("SELECT tx_hash FROM chain_txs").fetchall()
    assert {store.outbox_row("chain", e).status for e in recorded} == {"in_flight"}

    world.service(store).run_until_idle()

    assert store.conn.execute("SELECT tx_hash, status FROM chain_txs").fetchall() == [(signed[0], "mined")]
    assert {store.outbox_row("chain", e).ack_ref for e in recorded} == {signed[0]}
    landed = landed_denials(world.w3, world.admin, world.deploy_block)
    assert landed == [chain_seq(store, e) for e in recorded]
