"""The signed commitment request's text (pure): parsed back exactly, every malformed field refused with
a RequestError naming it (never another exception, never the plate), the binding to lot, contract,
chain and expiry."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.booking.requests import (
    MAX_EXPIRY_S,
    CommitmentRequest,
    RequestError,
    check_binding,
    parse_request,
    request_message,
)
from edge.vision.plates import region_patterns

LAYOUTS = region_patterns("de")
CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
NONCE = "5f0c1e9a2b7d4c38"
NOW = 1_800_000_000


def message(**overrides: object) -> str:
    fields: dict = {"lot": "LOT-NORD-1", "contract": CONTRACT, "chain_id": 31337, "plate": "B-AB 1234",
                    "nonce": NONCE, "expires": NOW + 60} | overrides
    return request_message(**fields)


def test_round_trip_with_and_without_a_window() -> None:
    assert parse_request(message(), LAYOUTS) == CommitmentRequest(
        "LOT-NORD-1", CONTRACT, 31337, "BAB1234", NONCE, NOW + 60)
    windowed = parse_request(message(rental=3, start=NOW, end=NOW + 7200), LAYOUTS)
    assert (windowed.rental, windowed.start, windowed.end) == (3, NOW, NOW + 7200)


@pytest.mark.parametrize(("text", "status", "says"), [
    (message().replace("parkgate vehicle commitment request", "hello"), 400, "must start with"),
    (message().replace("nonce: " + NONCE, "nonce: xyz"), 400, "'nonce'"),
    (message().replace("contract: " + CONTRACT, "contract: 0x12"), 400, "'contract'"),
    (message().replace("expires: ", "expires: -"), 400, "'expires'"),
    (message() + "\nnonce: " + NONCE, 400, "new key"),
    (message() + "\nrental: 3", 400, "together"),
    ("\n".join(line for line in message().split("\n") if not line.startswith("lot")), 400, "lacks lot"),
    (message(plate="ÄB 12"), 422, "plate"),
    (message(plate="1234567"), 422, "fits none of this lot's plate layouts"),
    ("x" * 5000, 400, "at most 1024"),
])
def test_malformed_requests_are_named(text: str, status: int, says: str) -> None:
    with pytest.raises(RequestError) as refused:
        parse_request(text, LAYOUTS)
    assert refused.value.status == status and says in str(refused.value)
    assert "1234567" not in str(refused.value) and "ÄB" not in str(refused.value)


def test_binding_to_lot_contract_chain_and_expiry() -> None:
    req = parse_request(message(), LAYOUTS)
    check_binding(req, "LOT-NORD-1", CONTRACT.lower(), 31337, NOW)
    for lot, contract, chain in (("LOT-SUED-2", CONTRACT, 31337), ("LOT-NORD-1", "0x" + "11" * 20, 31337),
                                 ("LOT-NORD-1", CONTRACT, 1)):
        with pytest.raises(RequestError, match="this service serves"):
            check_binding(req, lot, contract, chain, NOW)
    with pytest.raises(RequestError, match="expired"):
        check_binding(req, "LOT-NORD-1", CONTRACT, 31337, NOW + 61)
    far = parse_request(message(expires=NOW + MAX_EXPIRY_S + 1), LAYOUTS)
    with pytest.raises(RequestError, match="expires sooner"):
        check_binding(far, "LOT-NORD-1", CONTRACT, 31337, NOW)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400),
       st.lists(st.sampled_from(["lot: ", "plate: ", "nonce: ", "\n", ": ", "rental: ", "expires: 1"])))
def test_any_text_is_parsed_or_refused_with_a_request_error(text: str, pieces: list[str]) -> None:
    for candidate in (text, message() + "".join(pieces) + text, "".join(pieces) + text):
        try:
            parse_request(candidate, LAYOUTS)
        except RequestError as exc:
            assert exc.status in (400, 422)

