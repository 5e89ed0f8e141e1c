"""Fixtures for the contract suite: one deployment per session on the shared anvil (tests/conftest.py),
isolated per test.

Every test runs between ``evm_snapshot`` and ``evm_revert``, so tests never see each other's state.
Time travel uses anvil's ``evm_increaseTime``; every test reads the chain clock, never the wall clock.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from rental_world import World, build_world
from web3 import Web3


@pytest.fixture(scope="session")
def base_world(w3: Web3) -> World:
    return build_world(w3)


@pytest.fixture
def world(base_world: World, w3: Web3) -> Iterator[World]:
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
    yield base_world
    assert w3.provider.make_request("evm_revert", [snapshot])["result"] is True
