"""The pages' pre-flight request checked before any chain call (edge.booking.views.parse_call): any body
is decoded into one call of the contract or refused with a RequestError naming the bad field."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from web3 import Web3

from edge.booking.requests import RequestError
from edge.booking.views import MAX_CALLDATA_HEX, parse_call
from edge.chain.contract import load_artifact

CONTRACT = Web3().eth.contract(address="0x5FbDB2315678afecb367f032d93F642f64180aa3",
                               abi=load_artifact()["abi"])
SENDER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
SETTLE = CONTRACT.encode_abi("settle", [[1, 2, 3]])


def test_a_call_is_decoded_with_its_sender_and_value() -> None:
    book = CONTRACT.encode_abi("requestRental", [3, 100, 3700, b"\x01" * 32])
    call = parse_call(CONTRACT, {"from": SENDER.lower(), "data": book, "value": "0xde0b6b3a7640000"})
    assert (call.sender, call.function, call.value) == (SENDER, "requestRental", 10**18)
    assert (call.params["rentalId"], call.params["start"], call.params["end"]) == (3, 100, 3700)
    assert parse_call(CONTRACT, {"from": SENDER, "data": SETTLE}).value == 0


@pytest.mark.parametrize("body, says", [
    ([], "body must be JSON"),
    ({"from": SENDER}, "body must be JSON"),
    ({"from": "0x12", "data": SETTLE}, "must be 0x and 40 hex digits"),
    ({"from": SENDER, "data": SETTLE, "value": "10"}, "value must be a 0x hex number"),
    ({"from": SENDER, "data": SETTLE, "value": "0x" + "f" * 65}, "value must be a 0x hex number"),
    ({"from": SENDER, "data": "0x" + "00" * MAX_CALLDATA_HEX}, "data must be 0x and at most"),
    ({"from": SENDER, "data": SETTLE[:-1]}, "data must be 0x and at most"),
    ({"from": SENDER, "data": "0xdeadbeef"}, "ABI encoding of a ParkgateRental function call"),
    ({"from": SENDER, "data": SETTLE[:-8]}, "ABI encoding of a ParkgateRental function call"),
])
def test_bad_bodies_are_named(body: Any, says: str) -> None:
    with pytest.raises(RequestError, match=says) as refused:
        parse_call(CONTRACT, body)
    assert refused.value.status == 400


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.none(), st.integers(), st.text(max_size=80), st.binary(max_size=80)),
       st.binary(max_size=200), st.sampled_from(["", SETTLE[:10], SETTLE[:74]]))
def test_any_body_is_decoded_or_refused_with_a_request_error(value: Any, tail: bytes, head: str) -> None:
    for body in ({"from": SENDER, "data": (head or "0x") + tail.hex(), "value": value},
                 {"from": value, "data": SETTLE}, {"from": SENDER, "data": value}, value):
        try:
            call = parse_call(CONTRACT, body)
        except RequestError as exc:
            assert exc.status == 400
        else:
            assert call.function in {e["name"] for e in CONTRACT.abi if e.get("type") == "function"}
