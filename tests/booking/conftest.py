"""Fixtures for the operator CLI and booking service tests (helpers in lot_world.py)."""

from __future__ import annotations

import pytest
from lot_world import LotWorld, set_up_lot

from edge.tools.anvil import Anvil


@pytest.fixture(scope="module")
def lot_world(anvil: Anvil, tmp_path_factory: pytest.TempPathFactory) -> LotWorld:
    return set_up_lot(anvil, tmp_path_factory.mktemp("lot"))
