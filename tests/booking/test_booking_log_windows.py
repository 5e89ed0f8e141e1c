"""Reading the lot's events on a chain whose RPC provider refuses wide eth_getLogs ranges: `parkgate lot`
listings and the booking service read in windows (RentalClient.events), and the service reads each
confirmed block once (edge.booking.eventcache), reading the unconfirmed tail fresh so a reorg of it leaves
nothing stale, and dropping what it cached when a deeper reorg changed (or removed) the last block it
holds. Real anvil (reorgs made with evm_snapshot / evm_revert) behind a real HTTP proxy (rpc_proxy.py)
that refuses more than 50 blocks."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from lot_world import HOUR, LOT, LotWorld, lot_cli, mine, revert, set_up_lot, snapshot
from rpc_proxy import RangeLimitedRpc
from web3 import Web3

from edge.booking import eventcache
from edge.booking.service import BookingService
from edge.chain.contract import RentalClient
from edge.tools.anvil import Anvil, dev_account
from edge.vision.plates import region_patterns

WINDOW = 50
OWNER, RENTER = dev_account(1).address, dev_account(2).address
OWNER_VIEW_EVENTS = 4  # RentalEventCreated, RentalRequested, Settled, SpaceRegistered


@dataclass
class Wide:
    """A lot set up and booked, then more than ``WINDOW`` blocks mined after the contract's deployment."""

    lot: LotWorld
    first_block: int  # the deployment block
    booking_id: int


@pytest.fixture(scope="module")
def wide(anvil: Anvil, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wide]:
    """Between evm_snapshot and evm_revert: the blocks mined here (and the clock they move) are undone."""
    w3 = anvil.web3()
    before = snapshot(w3)
    try:
        first_block = w3.eth.block_number + 1
        lot = set_up_lot(anvil, tmp_path_factory.mktemp("wide"))
        code, booked, err = lot_cli("book", "--rental", str(lot.rental_id), "--start", str(lot.rental_start),
                                    "--end", str(lot.rental_start + HOUR), "--commitment", "0x" + "cd" * 32,
                                    *lot.common(), *lot.keys.flags("renter"))
        assert code == 0, err
        mine(w3, 3 * WINDOW)
        yield Wide(lot, first_block, booked["booking_id"])
    finally:
        assert revert(w3, before)


@pytest.fixture
def proxy(anvil: Anvil) -> Iterator[RangeLimitedRpc]:
    with RangeLimitedRpc(anvil.url, WINDOW) as running:
        yield running


def service_through(proxy: RangeLimitedRpc, wide: Wide) -> BookingService:
    client = RentalClient(Web3(Web3.HTTPProvider(proxy.url)), wide.lot.contract, log_window_blocks=WINDOW)
    return BookingService(client, LOT, wide.lot.plate_key, region_patterns("de"), rentals_ttl_s=0,
                          from_block=wide.first_block)


def owned(service: BookingService) -> list[tuple[int, int]]:
    """The owner's rental events as the service shows them: (rental id, space id)."""
    return [(r["rental_id"], r["space_id"]) for r in service.owner(OWNER)["rentals"]]


def cache_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == eventcache.__name__ and r.levelno == logging.WARNING]


def numbered_blocks(calls: list[tuple[str, list[Any]]]) -> list[str]:
    """The blocks asked for by number (not by a tag such as "latest")."""
    return [params[0] for method, params in calls
            if method == "eth_getBlockByNumber" and params[0].startswith("0x")]


def listing(wide: Wide, proxy: RangeLimitedRpc, what: str, *window: str) -> tuple[int, Any, str]:
    return lot_cli(what, "--lot", LOT, "--rpc", proxy.url, "--contract", wide.lot.contract, "--from-block",
                   str(wide.first_block), *window)


def test_lot_listings_read_in_windows_the_provider_accepts(wide: Wide, proxy: RangeLimitedRpc) -> None:
    code, _, err = listing(wide, proxy, "rentals")  # the default window (2000) is too wide for it
    assert code == 1 and "exceeds max block range 50" in err
    code, rentals, err = listing(wide, proxy, "rentals", "--log-window-blocks", str(WINDOW))
    assert code == 0, err
    assert [r["rental_id"] for r in rentals] == [wide.lot.rental_id]
    code, bookings, err = listing(wide, proxy, "bookings", "--log-window-blocks", str(WINDOW))
    assert code == 0, err
    assert [(b["booking_id"], b["renter"]) for b in bookings] == [(wide.booking_id, RENTER)]
    code, spaces, err = listing(wide, proxy, "spaces", "--log-window-blocks", str(WINDOW))
    assert code == 0 and [s["space_id"] for s in spaces] == [wide.lot.space_id], err
    assert proxy.ranges and all(last - first < WINDOW for first, last in proxy.ranges[1:])


def test_service_views_read_in_windows_the_provider_accepts(wide: Wide, proxy: RangeLimitedRpc) -> None:
    service = service_through(proxy, wide)
    owner = service.owner(OWNER)
    assert [r["rental_id"] for r in owner["rentals"]] == [wide.lot.rental_id]
    assert [b["booking_id"] for b in owner["bookings"]] == [wide.booking_id]
    assert [s["space_id"] for s in owner["spaces"]] == [wide.lot.space_id]
    assert [b["booking_id"] for b in service.renter(RENTER)["bookings"]] == [wide.booking_id]
    assert [r["rental_id"] for r in service.open_rentals()] == [wide.lot.rental_id]
    assert all(last - first < WINDOW for first, last in proxy.ranges)


def test_a_second_owner_view_reads_only_the_new_blocks_and_the_tail(wide: Wide,
                                                                    proxy: RangeLimitedRpc) -> None:
    service = service_through(proxy, wide)
    service.owner(OWNER)
    head = service.client.w3.eth.block_number
    windows = len(range(wide.first_block, head + 1, WINDOW))
    assert len(proxy.take_ranges()) == OWNER_VIEW_EVENTS * windows  # the history, once
    mine(wide.lot.w3, 3)
    again = service.owner(OWNER)
    assert [b["booking_id"] for b in again["bookings"]] == [wide.booking_id]
    # One call per event name: the 3 new blocks and the unconfirmed tail the first view did not keep.
    assert proxy.take_ranges() == [(head - service.confirmations + 1, head + 3)] * OWNER_VIEW_EVENTS
    service.owner(OWNER)  # nothing new: the tail only
    assert proxy.take_ranges() == [(head + 3 - service.confirmations + 1, head + 3)] * OWNER_VIEW_EVENTS


def test_an_event_a_reorg_removed_leaves_the_answer(wide: Wide, proxy: RangeLimitedRpc) -> None:
    w3, service = wide.lot.w3, service_through(proxy, wide)
    before_test = snapshot(w3)
    try:
        space_id, _ = wide.lot.approved_space("L-2/B01")
        service.owner(OWNER)
        before_listing = snapshot(w3)
        rental_id, _ = wide.lot.listing(space_id)
        mined_in = w3.eth.get_block("latest")  # the tail: fewer than service.confirmations blocks on top
        assert rental_id in [r["rental_id"] for r in service.owner(OWNER)["rentals"]]
        assert rental_id in [r["rental_id"] for r in service.open_rentals()]
        assert revert(w3, before_listing)
        mine(w3, 3)  # another branch, longer than the one that held the listing
        assert w3.eth.get_block(mined_in["number"])["hash"] != mined_in["hash"]  # its block is orphaned
        proxy.take_ranges()
        assert [r["rental_id"] for r in service.owner(OWNER)["rentals"]] == [wide.lot.rental_id]
        assert all(first > wide.first_block for first, _ in proxy.take_ranges())  # the cache stood: no rescan
        assert [r["rental_id"] for r in service.open_rentals()] == [wide.lot.rental_id]
    finally:
        assert revert(w3, before_test)


def test_a_reorg_deeper_than_the_confirmations_drops_the_cached_events(
        wide: Wide, proxy: RangeLimitedRpc, caplog: pytest.LogCaptureFixture) -> None:
    w3, service = wide.lot.w3, service_through(proxy, wide)
    before_test = snapshot(w3)
    try:
        space_id, _ = wide.lot.approved_space("L-2/B01")
        before_listing = snapshot(w3)
        rental_id, _ = wide.lot.listing(space_id)
        mine(w3, service.confirmations + 1)  # the listing confirmed: the cache keeps it
        frontier = w3.eth.get_block(w3.eth.block_number - service.confirmations)  # the last block it keeps
        assert owned(service) == [(wide.lot.rental_id, wide.lot.space_id), (rental_id, int(space_id))]
        assert revert(w3, before_listing)
        other_space, _ = wide.lot.approved_space("L-2/B02")  # another branch: another space and listing,
        other_rental, _ = wide.lot.listing(other_space)  # longer than the confirmations
        mine(w3, service.confirmations + 1)
        assert w3.eth.get_block(frontier["number"])["hash"] != frontier["hash"]
        expected = [(wide.lot.rental_id, wide.lot.space_id), (other_rental, int(other_space))]
        with caplog.at_level(logging.WARNING, logger=eventcache.__name__):
            assert owned(service) == expected
            assert [(r["rental_id"], r["space_id"]) for r in service.open_rentals()] == expected
        [warning] = cache_warnings(caplog)  # once, though four event names were cached
        assert f"block {frontier['number']}" in warning and bytes(frontier["hash"]).hex()[:8] in warning
        assert bytes(w3.eth.get_block(frontier["number"])["hash"]).hex()[:8] in warning
    finally:
        assert revert(w3, before_test)


def test_a_chain_now_below_the_cached_blocks_drops_them(wide: Wide, proxy: RangeLimitedRpc,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    w3, service = wide.lot.w3, service_through(proxy, wide)
    before_test = snapshot(w3)
    try:
        space_id, _ = wide.lot.approved_space("L-2/B01")
        before_listing = snapshot(w3)
        rental_id, _ = wide.lot.listing(space_id)
        mine(w3, service.confirmations + 1)
        frontier = w3.eth.block_number - service.confirmations
        assert (rental_id, int(space_id)) in owned(service)
        assert revert(w3, before_listing)  # the head is now below the block the cache holds last
        assert w3.eth.block_number < frontier
        with caplog.at_level(logging.WARNING, logger=eventcache.__name__):
            assert owned(service) == [(wide.lot.rental_id, wide.lot.space_id)]
        [warning] = cache_warnings(caplog)
        assert f"block {frontier}" in warning and "gone" in warning
    finally:
        assert revert(w3, before_test)


def test_an_unchanged_chain_costs_no_rescan(wide: Wide, proxy: RangeLimitedRpc,
                                            caplog: pytest.LogCaptureFixture) -> None:
    w3, service = wide.lot.w3, service_through(proxy, wide)
    before_test = snapshot(w3)
    try:
        service.owner(OWNER)
        head = w3.eth.block_number
        proxy.take_ranges(), proxy.take_calls()
        mine(w3, 3)
        with caplog.at_level(logging.WARNING, logger=eventcache.__name__):
            assert owned(service) == [(wide.lot.rental_id, wide.lot.space_id)]
        assert proxy.take_ranges() == [(head - service.confirmations + 1, head + 3)] * OWNER_VIEW_EVENTS
        # The check: at most the last block kept and the new one, for all four event names together.
        assert len(numbered_blocks(proxy.take_calls())) <= 2
        service.owner(OWNER)  # the same head: nothing to check, the tail only
        assert proxy.take_ranges() == [(head + 3 - service.confirmations + 1, head + 3)] * OWNER_VIEW_EVENTS
        assert numbered_blocks(proxy.take_calls()) == []
        assert cache_warnings(caplog) == []
    finally:
        assert revert(w3, before_test)
