"""The anvil launcher: state dump/restore across restarts, interval mining, chain id, start failures."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from rental_world import HOUR, PRICE_PER_HOUR, book, build_world

from edge.chain.contract import ChainBookingStatus, RentalClient
from edge.tools import anvil as anvil_module
from edge.tools.anvil import Anvil, AnvilConfig, AnvilError
from edge.tools.net import free_tcp_port


def test_state_survives_stop_and_restart(tmp_path: Path) -> None:
    state = tmp_path / "chain-state.json"
    config = AnvilConfig(state_path=state, chain_id=4242)
    with Anvil(config, log_path=tmp_path / "a.log") as node:
        w3 = node.web3()
        assert w3.eth.chain_id == 4242
        world = build_world(w3)
        _, booking_id, _ = book(world)
        address, height = world.admin.address, w3.eth.block_number
    assert state.is_file() and state.stat().st_size > 0
    with Anvil(config, log_path=tmp_path / "b.log") as node:
        w3 = node.web3()
        assert w3.eth.block_number == height
        client = RentalClient(w3, address)
        booking = client.get_booking(booking_id)
        assert (booking.status, booking.escrow) == (ChainBookingStatus.REQUESTED, 2 * PRICE_PER_HOUR)


def test_interval_mining_mines_transactions_and_empty_blocks(tmp_path: Path) -> None:
    with Anvil(AnvilConfig(block_time=0.5), log_path=tmp_path / "anvil.log") as node:
        w3 = node.web3()
        start_height = w3.eth.block_number
        world = build_world(w3)
        start = world.now() + 600
        listed = world.owner.create_rental_event(world.space_id, start, start + HOUR, PRICE_PER_HOUR)
        assert listed.receipt["status"] == 1
        height = w3.eth.block_number
        deadline = time.monotonic() + 10
        while w3.eth.block_number == height and time.monotonic() < deadline:
            time.sleep(0.1)
        assert w3.eth.block_number > height > start_height


def test_port_in_use_is_a_clear_start_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        node = Anvil(AnvilConfig(port=port), log_path=tmp_path / "anvil.log", start_timeout=10)
        with pytest.raises(AnvilError, match="exited at start|did not answer"):
            node.start()
        assert not node.alive()


def test_bad_option_reports_the_log(tmp_path: Path) -> None:
    node = Anvil(AnvilConfig(extra_args=("--no-such-flag",)), log_path=tmp_path / "anvil.log")
    with pytest.raises(AnvilError, match="no-such-flag"):
        node.start()


def test_auto_port_taken_before_bind_is_retried_on_a_new_port(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        ports = iter([busy.getsockname()[1], free_tcp_port()])
        monkeypatch.setattr(anvil_module, "free_tcp_port", lambda host: next(ports))
        with Anvil(AnvilConfig(), log_path=tmp_path / "anvil.log") as node:
            assert node.port != busy.getsockname()[1]
            assert node.web3().eth.block_number == 0
