"""A 10,000-record backlog drains in big batches; a stuck transaction is replaced with the same nonce."""

from __future__ import annotations

from sync_world import World, landed_denials, record_denied

from edge.chain.sync import chain_seq
from edge.store import Store

BACKLOG = 10_000


def test_ten_thousand_record_backlog_drains_once_in_order(world: World, store: Store) -> None:
    recorded = record_denied(store, BACKLOG, world.now())
    service = world.service(store, batch_size=200)
    assert service.health().backlog == BACKLOG
    service.run_until_idle()
    landed = landed_denials(world.w3, world.admin, world.deploy_block)
    assert landed == [chain_seq(store, e) for e in recorded]
    assert store.counts()["outbox.chain.done"] == BACKLOG
    txs = store.conn.execute("SELECT status, count(*) FROM chain_txs GROUP BY status").fetchall()
    assert txs == [("mined", BACKLOG // 200)]
    assert service.health().backlog == 0 and service.health().uploaded_total == BACKLOG


def test_stuck_transaction_is_replaced_with_same_nonce_and_bumped_fees(world: World, store: Store) -> None:
    provider = world.w3.provider
    recorded = record_denied(store, 3, world.now())
    service = world.service(store, receipt_wait_s=0.2, stuck_after_s=0.0)
    provider.make_request("evm_setAutomine", [False])
    try:
        assert service.step_up() == 0  # sent, not mined
        assert service.step_up() == 0  # still not mined and "stuck": replaced
        sent = store.conn.execute("SELECT tx_hash, nonce, max_fee_wei, priority_fee_wei FROM chain_txs "
                                  "ORDER BY sent_at_ms, rowid").fetchall()
        assert len(sent) >= 2 and len({nonce for _, nonce, _, _ in sent}) == 1
        first, second = sent[0], sent[1]
        assert int(second[2]) * 8 >= int(first[2]) * 9 and int(second[3]) * 8 >= int(first[3]) * 9
        assert store.outbox_row("chain", recorded[0]).sent_ref == sent[-1][0]
    finally:
        provider.make_request("evm_setAutomine", [True])
    provider.make_request("evm_mine", [])
    service.run_until_idle()
    landed = landed_denials(world.w3, world.admin, world.deploy_block)
    assert landed == [chain_seq(store, e) for e in recorded]
    statuses = sorted(s for (s,) in store.conn.execute("SELECT status FROM chain_txs"))
    assert statuses.count("mined") == 1 and set(statuses) <= {"mined", "replaced"}
    mined = store.conn.execute("SELECT tx_hash FROM chain_txs WHERE status = 'mined'").fetchone()[0]
    assert {store.outbox_row("chain", e).ack_ref for e in recorded} == {mined}
