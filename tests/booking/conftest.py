"""Fixtures for the operator CLI, booking service and booking pages tests (helpers in lot_world.py)."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest
from lot_world import LotWorld, set_up_lot

from edge.tools.anvil import Anvil

# The console's browser (Debian's chromium driven by Playwright), the same fixture, not a copy; its
# conftest imports the console tests' helpers (console_browsing), so their folder is on the path too.
CONSOLE_TESTS = Path(__file__).parents[1] / "console"
if str(CONSOLE_TESTS) not in sys.path:
    sys.path.append(str(CONSOLE_TESTS))
browser = runpy.run_path(str(CONSOLE_TESTS / "conftest.py"))["browser"]


@pytest.fixture(scope="module")
def lot_world(anvil: Anvil, tmp_path_factory: pytest.TempPathFactory) -> LotWorld:
    return set_up_lot(anvil, tmp_path_factory.mktemp("lot"))
