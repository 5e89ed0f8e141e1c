"""Fixtures shared by the suites: one real anvil node (JSON-RPC on a free loopback port) per test session.

The contract suite isolates its tests with evm_snapshot / evm_revert; the sync suite deploys a fresh
contract per test; so both can share the node.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
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
