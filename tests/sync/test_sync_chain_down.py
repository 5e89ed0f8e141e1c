"""The chain node goes away for a while: the gateway keeps recording, then catches up in order."""

from __future__ import annotations

from pathlib import Path

from sync_world import build_world, gate_event, landed_denials, record_denied

from edge.chain.contract import ChainBookingStatus
from edge.chain.sync import chain_seq, connect
from edge.store import Store
from edge.tools.anvil import Anvil, AnvilConfig


def test_node_down_then_restarted_with_its_state_catches_up_in_order(tmp_path: Path) -> None:
    state = tmp_path / "chain-state.json"
    node = Anvil(AnvilConfig(state_path=state), log_path=tmp_path / "anvil-1.log").start()
    try:
        world = build_world(node.web3())
        booking_id = world.book()
        with Store(tmp_path / "parkgate.sqlite") as store:
            # The sync talks to the node through its own client, as the daemon does.
            service = world.service(store, w3=connect(node.url, timeout_s=2.0))
            assert service.step()
            assert store.booking(str(booking_id)).status == "requested"
            chain_now = world.now()
            node.stop()  # SIGTERM: anvil dumps its state to `state`

            # Offline: the gate keeps deciding from the cache and recording; the sync only fails.
            assert store.booking(str(booking_id)) is not None
            events = [gate_event("verified", chain_now, booking_id, world.commitment())]
            events.append(gate_event("check_in", chain_now + 1, booking_id, world.commitment()))
            for event in events:
                store.record_gate_event(event, destinations=("chain",))
            denied = record_denied(store, 30, chain_now + 2)
            assert not service.step() and not service.step()
            health = service.health()
            assert health.consecutive_failures == 2 and health.backlog == 32
            assert "Connection" in (health.last_error or "")

            again = AnvilConfig(state_path=state, port=node.port)
            node = Anvil(again, log_path=tmp_path / "anvil-2.log").start()
            service.run_until_idle()
            service.step_down()

            expected = [chain_seq(store, e) for e in denied]
            assert landed_denials(world.w3, world.admin, world.deploy_block) == expected  # once, in order
            assert world.admin.get_booking(booking_id).status is ChainBookingStatus.CHECKED_IN
            assert store.booking(str(booking_id)).status == "checked_in"
            assert service.health().backlog == 0 and service.health().consecutive_failures == 0
    finally:
        node.stop()
