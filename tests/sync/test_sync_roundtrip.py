"""Online round trip against a real anvil: bookings come down, gate records go up, exactly once."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sync_world import HOUR, LOT, Answer, Tamper, World, gate_event, record_denied, tampered
from web3 import Web3
from web3.exceptions import ExtraDataLengthError

from edge.chain.contract import ChainBookingStatus
from edge.chain.sync import SyncService, chain_seq
from edge.chain.syncplan import lot_bytes
from edge.store import Store


def test_booking_down_gate_records_up_and_their_effect_down_again(world: World, store: Store) -> None:
    booking_id = world.book()
    service = world.service(store)
    assert service.step_down() >= 3  # RentalEventCreated, FirstAssociation, RentalRequested
    cached = store.booking(str(booking_id))
    assert cached is not None and cached.status == "requested" and cached.lot_id == LOT
    assert cached.vehicle_commitment == world.commitment()
    assert store.rental_event(cached.rental_event_id).status == "open"
    assert store.lot(LOT).geohash == "u33dc0" and store.spaces(LOT)[0].bay == "L-1/B17"

    now = world.now()
    verified = gate_event("verified", now, booking_id, world.commitment())
    check_in = gate_event("check_in", now + 1, booking_id, world.commitment())
    manual = gate_event("manual", now + 2)
    for event in (verified, check_in, manual):
        store.record_gate_event(event, destinations=("chain",))
    service.run_until_idle()
    row = store.outbox_row("chain", check_in.event_id)
    assert row.status == "done" and row.ack_ref.startswith("0x")
    assert world.admin.is_processed(world.gateway.address, chain_seq(store, check_in.event_id))
    # One record per entry: the contract verifies the plate in the check-in record itself.
    assert store.outbox_row("chain", verified.event_id).ack_ref == "not-uploaded:verified"
    assert store.outbox_row("chain", manual.event_id).ack_ref == "not-uploaded:manual"
    assert world.admin.get_booking(booking_id).status is ChainBookingStatus.CHECKED_IN

    service.step_down()
    assert store.booking(str(booking_id)).status == "checked_in"
    assert service.step_up() == 0  # nothing left: nothing sent twice
    health = service.health()
    assert health.backlog == 0 and health.last_synced_block == world.w3.eth.block_number
    assert health.uploaded_total == 1 and health.last_error is None and health.rejected == 0


def test_a_proof_of_authority_chain_syncs_both_ways(world: World, store: Store) -> None:
    """Every block with a POA chain's 97-byte extraData (Polygon PoS, BNB Chain; anvil's have none):
    web3's default client refuses each one; the sync's client (``edge.chain.sync.client``) reads them,
    so the booking comes down, the check-in goes up, and the reorg check compares the blocks' hashes."""
    seal = "0x" + "d8" * 32 + "5e" * 65

    def poa(method: str, params: Any, real: Any) -> Answer:
        result: Answer = real()
        block = result.get("result") if method in ("eth_getBlockByNumber", "eth_getBlockByHash") else None
        if isinstance(block, dict):
            block["extraData"] = seal
        return result

    w3 = tampered(world, poa)
    with pytest.raises((ExtraDataLengthError, ValueError), match="extraData"):  # web3's default client
        Web3(Tamper(world.w3.provider.endpoint_uri, poa)).eth.get_block("latest")  # type: ignore[attr-defined]
    booking_id = world.book()
    service = world.service(store, w3=w3)
    service.run_until_idle()
    assert store.booking(str(booking_id)).status == "requested"
    check_in = gate_event("check_in", world.now(), booking_id, world.commitment())
    store.record_gate_event(check_in, destinations=("chain",))
    service.run_until_idle()
    service.step_down()
    assert store.outbox_row("chain", check_in.event_id).status == "done"
    assert store.booking(str(booking_id)).status == "checked_in"
    health = service.health()
    assert health.last_error is None and health.reorgs_total == 0 and health.backlog == 0


def test_cancellations_reach_the_cache(world: World, store: Store) -> None:
    service = world.service(store)
    booking_id = world.book(lead_s=2 * HOUR)  # cancellable: its cancel cutoff (start - 1 h) is an hour away
    rental_id = int(store.booking(str(booking_id)).rental_event_id) if service.step_down() else 0
    world.renter.cancel_booking(booking_id)
    service.step_down()
    assert store.booking(str(booking_id)).status == "cancelled"
    world.owner.cancel_rental_event(rental_id)
    service.step_down()
    assert store.rental_event(str(rental_id)).status == "cancelled"


def test_daemon_thread_brings_new_bookings_and_uploads_records_within_seconds(world: World,
                                                                             tmp_path: Path) -> None:
    path = tmp_path / "parkgate.sqlite"
    Store(path).close()
    stop = threading.Event()
    errors: list[BaseException] = []

    def sync_thread() -> None:  # the store is thread-confined: open it in the thread that uses it
        try:
            with Store(path) as own:
                SyncService(world.w3, own, world.gateway, **world.settings(poll_interval_s=0.2)).run(stop)
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=sync_thread, daemon=True)
    thread.start()
    try:
        with Store(path) as gate_side:
            booking_id = world.book()
            assert _eventually(lambda: gate_side.booking(str(booking_id)) is not None, 10.0)
            event = gate_event("check_in", world.now(), booking_id, world.commitment())
            gate_side.record_gate_event(event, destinations=("chain",))
            assert _eventually(lambda: gate_side.booking(str(booking_id)).status == "checked_in", 10.0)
            assert gate_side.outbox_row("chain", event.event_id).status == "done"
    finally:
        stop.set()
        thread.join(10)
    assert not errors and not thread.is_alive()


def _eventually(check, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_gateway_without_rights_gets_a_clear_error_and_keeps_its_records(world: World, store: Store) -> None:
    world.admin.set_gateway(lot_bytes(LOT), world.gateway.address, False)
    record_denied(store, 2, world.now())
    service = world.service(store)
    assert not service.step()
    health = service.health()
    assert "setGateway" in (health.last_error or "") and health.backlog == 2
    assert store.counts().get("outbox.chain.pending") == 2
    world.admin.set_gateway(lot_bytes(LOT), world.gateway.address, True)
    service.run_until_idle()
    assert store.counts().get("outbox.chain.done") == 2
