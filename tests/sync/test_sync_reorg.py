"""Reorgs (evm_snapshot / evm_revert + new blocks) and confirmation depth, against a real anvil."""

from __future__ import annotations

from sync_world import World

from edge.store import Store


def _mine(world: World, blocks: int) -> None:
    for _ in range(blocks):
        world.w3.provider.make_request("evm_mine", [])


def test_reorg_rolls_back_a_booking_from_the_orphaned_branch(world: World, store: Store) -> None:
    service = world.service(store)
    kept = world.book("K-EP 1")
    service.step_down()
    snapshot = world.w3.provider.make_request("evm_snapshot", [])["result"]
    orphan = world.book("O-RF 2")
    _mine(world, 2)
    service.step_down()
    assert store.booking(str(orphan)) is not None
    orphan_rental = store.booking(str(orphan)).rental_event_id

    assert world.w3.provider.make_request("evm_revert", [snapshot])["result"] is True
    _mine(world, 4)  # the new branch is longer than the orphaned one
    service.step_down()

    assert store.booking(str(orphan)) is None and store.rental_event(orphan_rental) is None
    assert store.booking(str(kept)).status == "requested"
    assert service.health().reorgs_total == 1
    checkpoint = store.get_checkpoint("chain.down")
    canonical = world.w3.eth.get_block(checkpoint.block_number)["hash"]
    assert checkpoint.block_hash == "0x" + bytes(canonical).hex()

    # The new branch's own booking (same id on chain, other vehicle) is picked up normally.
    replacement = world.book("N-EW 3")
    service.step_down()
    assert replacement == orphan
    assert store.booking(str(replacement)).vehicle_commitment == world.commitment("N-EW 3")
    assert service.health().reorgs_total == 1


def test_logs_wait_for_the_confirmation_depth(world: World, store: Store) -> None:
    service = world.service(store, confirmations=3, log_window_blocks=1)
    booking = world.book()
    service.step_down()
    assert store.booking(str(booking)) is None
    _mine(world, 2)
    service.step_down()
    assert store.booking(str(booking)) is None
    _mine(world, 1)
    service.step_down()
    assert store.booking(str(booking)).status == "requested"
