"""Fixtures of the sync suite: one real anvil (automine) per session, a fresh deployment per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sync_world import World, build_world
from web3 import Web3

from edge.chain.anvil import Anvil, AnvilConfig
from edge.store import Store


@pytest.fixture(scope="session")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Anvil]:
    log = Path(tmp_path_factory.mktemp("sync-anvil")) / "anvil.log"
    with Anvil(AnvilConfig(), log_path=log) as node:
        yield node


@pytest.fixture(scope="session")
def w3(anvil: Anvil) -> Web3:
    return anvil.web3()


@pytest.fixture
def world(w3: Web3) -> World:
    return build_world(w3)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "parkgate.sqlite") as s:
        yield s
