"""Fixtures of the sync suite: a fresh deployment per test on the session's anvil (tests/conftest.py).

Each test runs between ``evm_snapshot`` and ``evm_revert``: a test that moves the chain's clock
(``evm_increaseTime``) must not leave the shared node a day ahead of the wall clock, where every later
booking made at "chain now" would start in the future for a daemon that judges with its own clock (the
installed daemon's test, run after this suite in one session, was refused ``too_early``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sync_world import World, build_world
from web3 import Web3

from edge.store import Store


@pytest.fixture
def world(w3: Web3) -> Iterator[World]:
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
    yield build_world(w3)
    assert w3.provider.make_request("evm_revert", [snapshot])["result"] is True


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "parkgate.sqlite") as s:
        yield s
