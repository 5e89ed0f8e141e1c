"""The sync-side findings of issue #16 on a real anvil, each now handled:

2. per-record outcomes: a rejected record gets the state 'rejected' with its reason, an alert, a line
   in `parkgate chain status` and `parkgate status`; a rejection a retry can fix is retried;
   the gateway clock 10 minutes ahead no longer gets records rejected; a record rejected for a cause the
   operator then fixes (the gateway key not authorised for the lot) lands once after
   `parkgate store outbox retry`, under a new number;
5. "nonce too low" (a transaction sent by hand with the gateway key) and "insufficient funds".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account
from sync_world import HOUR, LOT, World, gate_event, record_denied, store_path, write_config

from edge.chain.contract import ChainBookingStatus, RejectReason, RentalClient
from edge.chain.sync import SyncService, chain_seq, stored_status
from edge.chain.syncplan import lot_bytes
from edge.cli import main
from edge.daemon.status import render_status
from edge.store import Store

DAY = 24 * HOUR


def test_gateway_clock_ten_minutes_ahead_still_lands_every_record_and_alerts(world: World,
                                                                             tmp_path: Path) -> None:
    booking_id = world.book()
    ahead_s = 600
    with Store(tmp_path / "ahead.sqlite", clock=lambda: (world.now() + ahead_s) * 1000) as store:
        service = world.service(store)
        service.step_down()
        now = world.now() + ahead_s  # what the gateway's clock says
        for event in (gate_event("check_in", now, booking_id, world.commitment()),
                      gate_event("check_out", now + 60, booking_id, world.commitment())):
            store.record_gate_event(event, destinations=("chain",))
        service.run_until_idle()
        health = service.health()
        assert health.uploaded_total == 2 and health.rejected == 0 and health.last_error is None
        assert "clock_ahead" in health.alerts and "ahead of the chain" in health.alerts["clock_ahead"]
        assert health.extra["clock_ahead_s"] >= ahead_s - 5
    booking = world.admin.get_booking(booking_id)
    assert booking.status is ChainBookingStatus.CHECKED_OUT
    assert booking.check_in_at <= world.now() + 300  # never stamped beyond the allowed skew


def test_rejected_record_has_a_state_a_reason_an_alert_and_status_lines(
        world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    booking_id = world.book()
    config = write_config(tmp_path, world, "http://127.0.0.1:9")  # the CLI reads the store only
    with Store(store_path(tmp_path)) as store:
        service = world.service(store)
        service.step_down()
        entered = gate_event("check_in", world.now(), booking_id, world.commitment())
        store.record_gate_event(entered, destinations=("chain",))
        # the gateway stays offline past end + RECORD_DEADLINE; a third party expires the booking
        world.w3.provider.make_request("evm_increaseTime", [3 * HOUR + DAY])
        world.w3.provider.make_request("evm_mine", [])
        world.renter.expire_booking(booking_id)
        service.run_until_idle()
        row = store.outbox_row("chain", entered.event_id)
        assert row.status == "rejected" and row.last_error.startswith("BAD_STATE (tx 0x")
        health = service.health()
        assert health.rejected == 1 and health.uploaded_total == 0 and health.backlog == 0
        alert = health.alerts["record_rejected"]
        assert "BAD_STATE" in alert and entered.event_id in alert
        line = f"{entered.event_id} check_in booking {booking_id}: {row.last_error}"
        assert health.rejected_records == [line]
        assert stored_status(store)["rejected"] == 1
        snapshot = {"state": "running", "chain": {"state": "on", **health.as_dict()}}
    assert main(["chain", "status", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "rejected: 1" in out and f"rejected record: {line}" in out
    lines = render_status(snapshot)
    assert any(line.startswith("chain rejected:") and "BAD_STATE" in line for line in lines)
    assert any(line.startswith("chain alert record_rejected:") for line in lines)


def test_unknown_booking_rejection_is_retried_under_a_new_number_until_it_lands(world: World,
                                                                               store: Store) -> None:
    service = world.service(store)
    next_booking = world.admin.counts()[2] + 1  # the gateway's cache is ahead of the node it asks
    rental_id, start = world.listing()
    event = gate_event("check_in", world.now(), next_booking, world.commitment())
    store.record_gate_event(event, destinations=("chain",))
    assert service.step_up() == 0  # rejected UNKNOWN_BOOKING: back to pending, not done, not lost
    row = store.outbox_row("chain", event.event_id)
    assert row.status == "pending" and "UNKNOWN_BOOKING" in row.last_error
    assert chain_seq(store, event.event_id) is None  # its number is spent: a new one on the next send
    booked = world.renter.request_rental(rental_id, start, start + 2 * HOUR,
                                         bytes.fromhex(world.commitment()[2:])).return_value
    assert booked == next_booking
    service.run_until_idle()
    assert store.outbox_row("chain", event.event_id).status == "done"
    assert chain_seq(store, event.event_id) == 2  # number 1 was spent on the rejected attempt
    assert world.admin.get_booking(booked).status is ChainBookingStatus.CHECKED_IN


def test_a_record_rejected_until_the_gateway_is_authorised_lands_once_after_an_operator_retry(
        world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    booking_id = world.book()
    config = write_config(tmp_path, world, "http://127.0.0.1:9")  # the CLI reads the store only
    # the key is a gateway (of another lot), not (yet) of this booking's: its records are rejected WRONG_LOT
    world.admin.register_lot(lot_bytes("LOT-2"), "u33dc1")
    world.admin.set_gateway(lot_bytes("LOT-2"), world.gateway.address)
    world.admin.set_gateway(lot_bytes(LOT), world.gateway.address, False)
    with Store(store_path(tmp_path)) as store:
        service = world.service(store)
        entered = gate_event("check_in", world.now(), booking_id, world.commitment())
        store.record_gate_event(entered, destinations=("chain",))
        service.run_until_idle()
        row = store.outbox_row("chain", entered.event_id)
        assert row.status == "rejected" and row.last_error.startswith("WRONG_LOT (tx 0x")
        assert chain_seq(store, entered.event_id) == 1
        world.admin.set_gateway(lot_bytes(LOT), world.gateway.address, True)  # the operator fixes the cause
        retry = ["store", "outbox", "retry", str(row.id), "--by", "alice", "--config", str(config)]
        assert main([*retry, "--yes"]) == 0
        assert "retried 1 outbox row(s) (retried by alice" in capsys.readouterr().out
        service.run_until_idle()
        row = store.outbox_row("chain", entered.event_id)
        assert row.status == "done"
        assert chain_seq(store, entered.event_id) == 2  # number 1 was spent on the rejected attempt
    assert world.admin.get_booking(booking_id).status is ChainBookingStatus.CHECKED_IN
    checked_in = world.admin.events("SecondAssociation", from_block=world.deploy_block)
    assert [e.args["bookingId"] for e in checked_in] == [booking_id]  # once, not twice
    rejected = world.admin.events("GateRecordRejected", from_block=world.deploy_block)
    assert [(e.args["seq"], e.args["reason"]) for e in rejected] == [(1, RejectReason.WRONG_LOT)]
    assert world.admin.last_seq(world.gateway.address) == 2


class DiesBeforeBroadcast(SyncService):
    def _broadcast(self, raw: str) -> str | None:
        raise KeyboardInterrupt  # the process dies with the transaction signed and recorded


def test_nonce_taken_by_a_hand_sent_transaction_is_detected_and_the_rows_land_with_a_fresh_nonce(
        world: World, store: Store) -> None:
    recorded = record_denied(store, 3, world.now())
    with pytest.raises(KeyboardInterrupt):
        DiesBeforeBroadcast(world.w3, store, world.gateway, **world.settings()).step_up()
    ((signed_nonce,),) = store.conn.execute("SELECT nonce FROM chain_txs").fetchall()
    # meanwhile someone sends a transaction by hand with the gateway key: it takes that nonce
    by_hand = {"to": world.gateway.address, "value": 0, "gas": 21_000, "nonce": signed_nonce, "type": 2,
               "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9, "chainId": 31337}
    world.w3.eth.send_raw_transaction(world.gateway.sign_transaction(by_hand).raw_transaction)
    service = world.service(store)
    service.run_until_idle()
    assert "nonce_conflict" in service.health().alerts
    statuses = store.conn.execute("SELECT nonce, status FROM chain_txs ORDER BY rowid").fetchall()
    assert statuses == [(signed_nonce, "dropped"), (signed_nonce + 1, "mined")]  # never reused
    assert {store.outbox_row("chain", e).status for e in recorded} == {"done"}
    landed = [e.args["seq"] for e in world.admin.events("GateDenied", from_block=world.deploy_block)]
    assert landed == [chain_seq(store, e) for e in recorded]  # each exactly once


def test_insufficient_funds_alerts_with_balance_and_backlog_cost_then_drains_once_funded(
        world: World, store: Store) -> None:
    poor = Account.create()
    world.admin.set_gateway(lot_bytes("LOT-1"), poor.address)
    recorded = record_denied(store, 25, world.now())
    service = SyncService(world.w3, store, poor, **world.settings(batch_size=20))
    assert not service.step()
    alert = service.health().alerts["insufficient_funds"]
    assert f"gateway {poor.address} holds 0 wei" in alert and "backlog of 25 records" in alert
    assert "insufficient funds" in (service.health().last_error or "")
    assert service.health().backlog == 25
    world.w3.eth.send_transaction({"from": world.w3.eth.accounts[0], "to": poor.address, "value": 10**18})
    service.run_until_idle()
    assert "insufficient_funds" not in service.health().alerts
    assert {store.outbox_row("chain", e).status for e in recorded} == {"done"}
    assert RentalClient(world.w3, world.admin.address).last_seq(poor.address) == 25


def test_chain_status_json_lists_rejected_records(world: World, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, world, "http://127.0.0.1:9")
    with Store(store_path(tmp_path)) as store:
        event = gate_event("check_in", world.now(), 999, world.commitment())
        store.record_gate_event(event, destinations=("chain",))
        row = store.outbox_row("chain", event.event_id)
        store.mark_outbox_rejected([row.id], "WRONG_LOT (tx 0xabc)")
    assert main(["chain", "status", "--config", str(config), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["rejected"] == 1 and status["backlog"] == 0
    assert status["rejected_records"] == [f"{event.event_id} check_in booking 999: WRONG_LOT (tx 0xabc)"]
