"""The per-row views of a listing (a space's approval, a rental event's cancelled flag, a booking's state)
read in JSON-RPC batches: an owner's page costs the same few HTTP requests whatever its rows, with the
rows one call per row gives; a provider that refuses batches gets one call per row, once told; a call
failing inside a batch raises what it raises alone. Real anvil behind a real HTTP proxy (rpc_proxy.py)
that counts HTTP requests and calls and refuses batches when told to, as some providers do."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_abi import encode as abi_encode
from eth_utils import keccak
from lot_world import HOUR, LOT, LotWorld, lot_cli, revert, set_up_lot, snapshot
from rpc_proxy import RangeLimitedRpc
from web3 import Web3
from web3.exceptions import BadFunctionCallOutput, ExtraDataLengthError, Web3RPCError

from edge.booking.service import BookingService
from edge.booking.views import owner_view, renter_view
from edge.chain import contract
from edge.chain.contract import ContractRevert, RentalClient
from edge.chain.sync import connect
from edge.identity import lot_id
from edge.tools.anvil import Anvil, dev_account
from edge.vision.plates import region_patterns

OPERATOR, OWNER, RENTER, OTHER_RENTER = (dev_account(i).address for i in (0, 1, 2, 3))
LOT_ID = lot_id(LOT)
COMMITMENT = b"\xcd" * 32
EXTRA_SPACES, RENTALS_PER_SPACE = 3, 3
ROW_VIEW = {"spaces": "getSpace", "rentals": "getRentalEvent", "bookings": "getBooking"}  # per listing
# The HTTP requests of an owner's page besides its rows: 4 event names (eth_blockNumber and one eth_getLogs
# each), the chain time, the owner's verification and credit (an eth_call each: a view read alone costs
# one request; web3 7's validation middleware, which `connect` removes, added two eth_chainId to each).
OWNER_VIEW_FIXED_REQUESTS = 4 * 2 + 1 + 2
SINGLE_CALL_REQUESTS = 1
NODE_ERROR = {"code": -32000, "message": "header not found"}  # a node's error that is no revert


@dataclass
class Busy:
    """A lot whose owner has 4 spaces, 11 rental events (one cancelled) and 10 bookings (one cancelled)."""

    lot: LotWorld
    first_block: int  # the deployment block
    space_ids: list[int]
    rental_ids: list[int]
    booking_ids: list[int]
    cancelled_rental: int
    cancelled_booking: int


def new_space(owner: RentalClient, operator: RentalClient, location: str) -> int:
    space_id = int(owner.register_space(LOT_ID, location).one("SpaceRegistered").args["spaceId"])
    operator.approve_space(space_id)
    return space_id


def new_rental(owner: RentalClient, space_id: int, start: int) -> int:
    created = owner.create_rental_event(space_id, start, start + 4 * HOUR, 7)
    return int(created.one("RentalEventCreated").args["rentalId"])


def book(renter: RentalClient, rental_id: int, hours_in: int = 0) -> int:
    """An hour of ``rental_id``'s window, ``hours_in`` hours after its start."""
    start = renter.get_rental_event(rental_id).start + hours_in * HOUR
    booked = renter.request_rental(rental_id, start, start + HOUR, COMMITMENT)
    return int(booked.one("RentalRequested").args["bookingId"])


def fill(lot: LotWorld, first_block: int) -> Busy:
    owner = RentalClient(lot.w3, lot.contract, OWNER)
    operator, renter = owner.with_sender(OPERATOR), owner.with_sender(RENTER)
    spaces = [new_space(owner, operator, f"L-3/B{n:02}") for n in range(EXTRA_SPACES)]
    start = lot.now() + HOUR
    rentals = [lot.rental_id] + [new_rental(owner, space, start + k * 5 * HOUR)
                                 for space in spaces for k in range(RENTALS_PER_SPACE)]
    cancelled_rental = new_rental(owner, spaces[0], start + RENTALS_PER_SPACE * 5 * HOUR)
    owner.cancel_rental_event(cancelled_rental)
    bookings = [book(renter, rental) for rental in rentals]
    renter.cancel_booking(bookings[-1])  # hours ahead: before its cancel cutoff
    return Busy(lot, first_block, [lot.space_id, *spaces], [*rentals, cancelled_rental], bookings,
                cancelled_rental, bookings[-1])


@pytest.fixture(scope="module")
def busy(anvil: Anvil, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Busy]:
    """Between evm_snapshot and evm_revert: the shared anvil is left as it was."""
    w3 = anvil.web3()
    before = snapshot(w3)
    try:
        first_block = w3.eth.block_number + 1
        yield fill(set_up_lot(anvil, tmp_path_factory.mktemp("busy")), first_block)
    finally:
        assert revert(w3, before)


@pytest.fixture
def proxy(anvil: Anvil) -> Iterator[RangeLimitedRpc]:
    with RangeLimitedRpc(anvil.url, max_range=10**9) as running:
        yield running


def through(proxy: RangeLimitedRpc, busy: Busy) -> RentalClient:
    """A client of its own (nothing remembered) reading through the proxy."""
    return RentalClient(connect(proxy.url), busy.lot.contract)


def owner_page(client: RentalClient, busy: Busy) -> dict[str, Any]:
    return owner_view(client, LOT_ID, OWNER, busy.first_block)


def row_views(calls: list[tuple[str, list[Any]]], busy: Busy) -> list[str]:
    """The contract's views among ``calls``, by name: a per-row view's, "other" for the others."""
    selectors = {"0x" + keccak(text=f"{name}(uint256)")[:4].hex(): name for name in ROW_VIEW.values()}
    return [selectors.get(str(params[0].get("data"))[:10], "other") for method, params in calls
            if method == "eth_call" and str(params[0].get("to")).lower() == busy.lot.contract.lower()]


def test_an_owner_page_costs_the_same_few_requests_whatever_its_rows(busy: Busy,
                                                                     proxy: RangeLimitedRpc) -> None:
    client, w3 = through(proxy, busy), busy.lot.w3
    page = owner_page(client, busy)
    assert (len(page["spaces"]), len(page["rentals"]), len(page["bookings"])) == (4, 11, 10)
    requests = proxy.take_requests()
    # One batch per listing: the rentals, the spaces and the bookings; nothing else batched.
    assert sorted(n for n in requests if n > 1) == [4, 10, 11]
    assert len(requests) == OWNER_VIEW_FIXED_REQUESTS + 3
    before_more = snapshot(w3)
    try:
        other = RentalClient(w3, busy.lot.contract, OTHER_RENTER)
        more = [book(other, rental, hours_in=2) for rental in busy.rental_ids[1:4]]
        page = owner_page(client, busy)
        assert [b["booking_id"] for b in page["bookings"]][-3:] == more
        assert len(proxy.take_requests()) == OWNER_VIEW_FIXED_REQUESTS + 3  # 3 rows more, no request more
    finally:
        assert revert(w3, before_more)


def test_the_rows_are_those_one_call_per_row_reads(busy: Busy, proxy: RangeLimitedRpc) -> None:
    batched = owner_page(through(proxy, busy), busy)
    assert proxy.take_requests().count(1) == OWNER_VIEW_FIXED_REQUESTS
    proxy.take_calls()
    one_by_one = through(proxy, busy)
    one_by_one.batch_refusal = "the test reads one call per row"
    assert owner_page(one_by_one, busy) == batched
    assert Counter(row_views(proxy.take_calls(), busy)) == {
        "getSpace": 4, "getRentalEvent": 11, "getBooking": 10, "other": 2}  # other: verified, credit
    assert proxy.take_requests() == [1] * (OWNER_VIEW_FIXED_REQUESTS + SINGLE_CALL_REQUESTS * (4 + 11 + 10))
    assert [s["space_id"] for s in batched["spaces"]] == busy.space_ids
    assert all(s["approved"] for s in batched["spaces"])
    assert [r["rental_id"] for r in batched["rentals"]] == busy.rental_ids
    assert [r["rental_id"] for r in batched["rentals"] if r["cancelled"]] == [busy.cancelled_rental]
    assert [b["booking_id"] for b in batched["bookings"]] == busy.booking_ids
    states = {b["booking_id"]: b["status"] for b in batched["bookings"]}
    assert states.pop(busy.cancelled_booking) == "cancelled" and set(states.values()) == {"requested"}
    assert {(b["renter"], b["vehicle_commitment"]) for b in batched["bookings"]} == {
        (RENTER, "0x" + COMMITMENT.hex())}


@pytest.mark.parametrize("refusal, named", [(405, "HTTP 405"), (200, "batch requests are not supported")],
                         ids=["http-405", "error-object"])
def test_a_provider_refusing_batches_gets_one_call_per_row_once_told(
        busy: Busy, proxy: RangeLimitedRpc, caplog: pytest.LogCaptureFixture, refusal: int,
        named: str) -> None:
    expected = owner_page(through(proxy, busy), busy)
    expected_renter = renter_view(through(proxy, busy), LOT_ID, RENTER, busy.first_block)
    proxy.refuse_batches = refusal
    client = through(proxy, busy)
    with caplog.at_level(logging.DEBUG, logger=contract.__name__):
        assert owner_page(client, busy) == expected
        proxy.take_requests()
        assert renter_view(client, LOT_ID, RENTER, busy.first_block) == expected_renter
    assert proxy.refused == [11]  # the first batch (the owner's rentals), never another
    assert set(proxy.take_requests()) == {1}  # the renter's 10 bookings: one call each
    [warning] = [r for r in caplog.records if r.name == contract.__name__ and r.levelno >= logging.INFO]
    assert warning.levelno == logging.WARNING and named in warning.getMessage()
    assert client.batch_refusal is not None and named in client.batch_refusal


def test_the_booking_service_pages_read_their_rows_in_batches(busy: Busy, proxy: RangeLimitedRpc) -> None:
    service = BookingService(through(proxy, busy), LOT, busy.lot.plate_key, region_patterns("de"),
                             from_block=busy.first_block)
    service.owner(OWNER)  # reads the lot's history into the service's event cache
    proxy.take_requests()
    page = service.owner(OWNER)  # a poll of the owner's page
    assert sorted(n for n in proxy.take_requests() if n > 1) == [4, 10, 11]
    assert page == owner_page(through(proxy, busy), busy)
    proxy.take_requests()
    assert service.renter(RENTER)["bookings"] == page["bookings"]  # the renter booked every listing
    assert [n for n in proxy.take_requests() if n > 1] == [10]


def test_the_booking_service_reads_a_proof_of_authority_chain(busy: Busy, proxy: RangeLimitedRpc) -> None:
    """Blocks with a POA chain's 97-byte extraData (Polygon PoS, BNB Chain): web3's default client refuses
    each one, so the booking service and the sync could not read the chain time or check for a reorg on
    such a chain; `connect` reads them (web3's ExtraDataToPOAMiddleware)."""
    expected = owner_page(through(proxy, busy), busy)
    proxy.poa_blocks = True
    with pytest.raises((ExtraDataLengthError, ValueError), match="extraData|97 bytes"):
        Web3(Web3.HTTPProvider(proxy.url)).eth.get_block("latest")  # web3's default client
    client = through(proxy, busy)
    assert len(client.w3.eth.get_block("latest")["proofOfAuthorityData"]) == 97
    service = BookingService(client, LOT, busy.lot.plate_key, region_patterns("de"),
                             from_block=busy.first_block)
    assert service.owner(OWNER) == expected == owner_page(client, busy)


@pytest.mark.parametrize("what, rows", [("spaces", 4), ("rentals", 11), ("bookings", 10)])
def test_lot_listings_print_the_same_rows_batched_or_not(busy: Busy, proxy: RangeLimitedRpc, what: str,
                                                         rows: int) -> None:
    def listing() -> Any:
        code, printed, err = lot_cli(what, "--lot", LOT, "--rpc", proxy.url, "--contract", busy.lot.contract,
                                     "--from-block", str(busy.first_block))
        assert code == 0, err
        return printed

    batched = listing()
    assert len(batched) == rows and [n for n in proxy.take_requests() if n > 1] == [rows]
    assert row_views(proxy.take_calls(), busy) == [ROW_VIEW[what]] * rows
    proxy.refuse_batches = 405
    assert listing() == batched
    assert proxy.refused == [rows] and [n for n in proxy.take_requests() if n > 1] == [rows]
    assert row_views(proxy.take_calls(), busy) == [ROW_VIEW[what]] * rows  # the refused batch's, one by one


def revert_error(booking_id: int) -> dict[str, Any]:
    """A node's answer to an eth_call that reverted with UnknownBooking(booking_id)."""
    data = keccak(text="UnknownBooking(uint256)")[:4] + abi_encode(["uint256"], [booking_id])
    return {"code": 3, "message": "execution reverted", "data": "0x" + data.hex()}


@pytest.mark.parametrize("error", ["revert", "node"])
def test_a_call_failing_in_a_batch_raises_what_it_raises_alone(busy: Busy, proxy: RangeLimitedRpc,
                                                               error: str) -> None:
    client, failing = through(proxy, busy), busy.booking_ids[3]
    proxy.errors[client.contract.encode_abi("getBooking", [failing])] = (
        revert_error(failing) if error == "revert" else NODE_ERROR)
    with pytest.raises((ContractRevert, Web3RPCError)) as alone:
        client.get_booking(failing)
    proxy.take_requests(), proxy.take_calls()
    with pytest.raises(type(alone.value)) as batched:
        client.get_bookings(busy.booking_ids)
    assert str(batched.value) == str(alone.value)
    if error == "revert":
        assert isinstance(batched.value, ContractRevert) and isinstance(alone.value, ContractRevert)
        assert (batched.value.error, batched.value.args_) == (alone.value.error, alone.value.args_) == (
            "UnknownBooking", (failing,))
        assert [n for n in proxy.take_requests() if n > 1] == [10]  # raised from the batch
        assert row_views(proxy.take_calls(), busy) == ["getBooking"] * 10
    else:  # the batch's calls read one at a time, up to the failing one
        assert [n for n in proxy.take_requests() if n > 1] == [10]
        assert row_views(proxy.take_calls(), busy) == ["getBooking"] * (10 + 4)
    assert client.batch_refusal is None  # the node takes batches: the next listing is batched again
    del proxy.errors[client.contract.encode_abi("getBooking", [failing])]
    assert client.get_bookings(busy.booking_ids) == [client.get_booking(i) for i in busy.booking_ids]


def test_no_contract_at_the_address_is_named_as_a_single_call_names_it(busy: Busy,
                                                                       proxy: RangeLimitedRpc) -> None:
    client = RentalClient(connect(proxy.url), dev_account(7).address)  # no code there
    with pytest.raises(BadFunctionCallOutput) as alone:
        client.get_booking(busy.booking_ids[0])
    with pytest.raises(BadFunctionCallOutput) as batched:
        client.get_bookings(busy.booking_ids)
    assert "is contract deployed correctly" in str(alone.value) and str(batched.value) == str(alone.value)
    assert client.batch_refusal is None


def test_a_batch_holds_at_most_max_batch_calls(busy: Busy, proxy: RangeLimitedRpc,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    client = through(proxy, busy)
    whole = client.get_bookings(busy.booking_ids)
    assert proxy.take_requests() == [10]
    monkeypatch.setattr(contract, "MAX_BATCH_CALLS", 4)
    assert client.get_bookings(busy.booking_ids) == whole
    assert proxy.take_requests() == [4, 4, 2]
    proxy.take_calls()
    assert client.get_bookings(busy.booking_ids[:1]) == whole[:1]
    assert row_views(proxy.take_calls(), busy) == ["getBooking"] and max(proxy.take_requests()) == 1
    assert client.get_bookings([]) == [] and proxy.take_requests() == []
