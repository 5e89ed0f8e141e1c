"""Fixtures for the operator CLI, booking service and booking pages tests (helpers in lot_world.py)."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
from lot_world import LotWorld, set_up_lot

from edge.tools.anvil import Anvil

# The console's browser (Debian's chromium driven by Playwright), the same fixture, not a copy.
browser = runpy.run_path(str(Path(__file__).parents[1] / "console" / "conftest.py"))["browser"]


@pytest.fixture(scope="module")
def lot_world(anvil: Anvil, tmp_path_factory: pytest.TempPathFactory) -> LotWorld:
    return set_up_lot(anvil, tmp_path_factory.mktemp("lot"))
