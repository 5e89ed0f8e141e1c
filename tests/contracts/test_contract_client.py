"""RentalClient plumbing: revert decoding, event queries by lot, local signing, the gas report."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_abi import encode
from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rental_world import PRICE_PER_HOUR, World, book, listing

from edge.chain.contract import GateRecord, RecordKind, RentalClient, decode_revert, load_artifact
from edge.tools import gas

ABI = load_artifact()["abi"]


def test_decode_revert_names_custom_errors_and_keeps_unknown_data() -> None:
    data = keccak(text="WrongPayment(uint256,uint256)")[:4] + encode(["uint256", "uint256"], [5, 4])
    revert = decode_revert(ABI, "0x" + data.hex())
    assert (revert.error, revert.args_) == ("WrongPayment", (5, 4))
    assert decode_revert(ABI, "0xdeadbeef").error == "unknown"
    assert decode_revert(ABI, None).error == "unknown"
    truncated = decode_revert(ABI, "0x" + data[:10].hex())
    assert (truncated.error, truncated.args_) == ("WrongPayment", ())
    message = keccak(text="Error(string)")[:4] + encode(["string"], ["boom"])
    assert decode_revert(ABI, message.hex()).args_ == ("boom",)


def test_client_without_sender_refuses_writes(world: World) -> None:
    reader = RentalClient(world.w3, world.admin.address)
    assert reader.is_verified_owner(world.owner.sender)
    with pytest.raises(ValueError, match="no sender"):
        reader.verify_owner(world.stranger.sender, b"\x01" * 32)


def test_events_query_filters_by_lot_and_block_range(world: World) -> None:
    first = world.w3.eth.block_number + 1
    _, booking_id, _ = book(world)
    requested = world.admin.events("RentalRequested", from_block=first, lot_id=world.lot)
    assert [e.args["bookingId"] for e in requested] == [booking_id]
    assert requested[0].block_number >= first
    assert world.admin.events("RentalRequested", from_block=first, lot_id=world.other_lot) == []
    assert world.admin.events("RentalRequested", from_block=0, to_block=first - 1) == []


def test_local_account_signing_uses_pending_nonce(world: World) -> None:
    rental_id, start = listing(world)
    nonce = world.w3.eth.get_transaction_count(world.gateway_account.address)
    world.w3.eth.send_transaction({"from": world.w3.eth.accounts[0], "to": world.gateway_account.address,
                                   "value": 10**18})
    booker = world.admin.with_sender(world.gateway_account)
    booked = booker.request_rental(rental_id, start, start + 3600, world.commitment())
    assert booked.receipt["from"] == world.gateway_account.address
    assert world.w3.eth.get_transaction_count(world.gateway_account.address) == nonce + 1
    assert world.admin.get_booking(booked.return_value).escrow == PRICE_PER_HOUR


def test_gate_record_words_pack_every_field_and_refuse_out_of_range() -> None:
    record = GateRecord(2**64 - 1, RecordKind.CHECK_OUT, 2**64 - 1, b"\xab" * 32, 2**40 - 1)
    head, commitment = record.words()
    assert (head >> 192, (head >> 184) & 0xFF, (head >> 120) & (2**64 - 1), (head >> 80) & (2**40 - 1)) == (
        2**64 - 1, 1, 2**64 - 1, 2**40 - 1)
    assert head & (2**80 - 1) == 0 and commitment == int.from_bytes(b"\xab" * 32, "big")
    zero, denied = b"\0" * 32, RecordKind.DENIED
    for bad in (GateRecord(0, denied, 0, zero, 0), GateRecord(1, denied, 2**64, zero, 0),
                GateRecord(1, denied, 0, zero[1:], 0), GateRecord(1, denied, 0, zero, 2**40)):
        with pytest.raises(ValueError, match="out of range"):
            bad.words()


def test_gas_report_measures_batches_lifecycle_and_the_visit(tmp_path: Path) -> None:
    report = gas.measure(sizes=(1, 4, gas.VISIT_BATCH), log_dir=tmp_path)
    by_key = {(b.kind, b.size): b for b in report.batches}
    assert len(report.batches) == 12
    for kind in ("CHECK_IN", "CHECK_OUT"):
        assert by_key[(kind, 4)].per_record < by_key[(kind, 1)].per_record
        assert by_key[("replay (skipped)", 4)].per_record < by_key[(kind, 4)].per_record
        assert by_key[(kind, gas.VISIT_BATCH)].bytes_per_record < 70  # 64 bytes a record + the call's head
    names = [name for name, _ in report.lifecycle]
    for call in ("deploy", "requestRental", "cancelBooking", "expireBooking", "settleOverdue", "withdraw"):
        assert call in names
    text = report.render()
    assert "gas/record" in text and "CHECK_OUT" in text and "calldata B/record" in text
    visit = sum(by_key[(kind, gas.VISIT_BATCH)].per_record for kind in ("CHECK_IN", "CHECK_OUT"))
    assert f"gas per vehicle visit (entry + exit, batch 100): {round(visit):,}" in text
    assert visit <= 30_000 and "147,719" in text


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_decode_revert_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    assert isinstance(decode_revert(ABI, "0x" + data.hex()).error, str)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_decode_revert_with_known_selector_and_garbage_arguments(payload: bytes) -> None:
    data = keccak(text="OverlappingBooking(uint256,uint256)")[:4] + payload
    assert decode_revert(ABI, data.hex()).error == "OverlappingBooking"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(topics=st.lists(st.binary(min_size=0, max_size=40), max_size=5), data=st.binary(max_size=300),
       known=st.booleans())
def test_malformed_logs_are_counted_and_dropped(world: World, topics: list[bytes], data: bytes,
                                                known: bool) -> None:
    client = RentalClient(world.w3, world.admin.address)
    if known:  # make it claim to be a real event of ours, with garbage payload
        topics = [next(iter(client._events_by_topic))] + topics
    log = {"address": client.address, "topics": topics, "data": data, "blockNumber": 1, "logIndex": 0,
           "transactionHash": b"\x01" * 32, "blockHash": b"\x02" * 32, "transactionIndex": 0}
    before = client.dropped_logs
    decoded = client.decode_logs([log, {"address": "not-an-address", "topics": [], "data": b""}])
    assert len(decoded) + (client.dropped_logs - before) <= 2
    assert client.dropped_logs - before >= 1  # the bad address at least
