"""Fixtures for the contract suite: one real anvil and one deployment per session, isolated per test.

Every test runs between ``evm_snapshot`` and ``evm_revert``, so tests never see each other's state.
Time travel uses anvil's ``evm_increaseTime``; every test reads the chain clock, never the wall clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from rental_world import World, build_world
from web3 import Web3

from edge.chain.anvil import Anvil, AnvilConfig


@pytest.fixture(scope="session")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Anvil]:
    log = Path(tmp_path_factory.mktemp("anvil")) / "anvil.log"
    with Anvil(AnvilConfig(), log_path=log) as node:
        yield node


@pytest.fixture(scope="session")
def w3(anvil: Anvil) -> Web3:
    return anvil.web3()


@pytest.fixture(scope="session")
def base_world(w3: Web3) -> World:
    return build_world(w3)


@pytest.fixture
def world(base_world: World, w3: Web3) -> Iterator[World]:
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
    yield base_world
    assert w3.provider.make_request("evm_revert", [snapshot])["result"] is True
