"""Fixtures of the sync suite: a fresh deployment per test on the session's anvil (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sync_world import World, build_world
from web3 import Web3

from edge.store import Store


@pytest.fixture
def world(w3: Web3) -> World:
    return build_world(w3)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "parkgate.sqlite") as s:
        yield s
