"""Fixtures shared by the suites: one real anvil node (JSON-RPC on a free loopback port) per test session.

The contract suite isolates its tests with evm_snapshot / evm_revert; the sync suite deploys a fresh
contract per test; so both can share the node.

``core`` marks the pure core's tests (plain data: no process, broker, chain node, pty or model), the
modules in ``CORE_MODULES``; ``pytest -m core`` runs them alone in seconds.

No process outlives the suite: after the last teardown, a child process of this pytest still running
(an anvil, mosquitto, emulator or daemon some test forgot to stop) fails the run and is named; under
pytest-xdist (``make test``: two workers, a file per worker) each worker looks at its own children and
the controller names them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import Web3

from edge.tools.anvil import Anvil, AnvilConfig

CORE_MODULES = frozenset({
    "tests/access/test_access_decide.py", "tests/access/test_access_plates.py",
    "tests/access/test_access_policy.py", "tests/access/test_access_sessions.py",
    "tests/access/test_lane_machine.py", "tests/access/test_lane_records.py",
    "tests/daemon/test_daemon_units.py", "tests/foundation/test_foundation_config.py",
    "tests/vision/test_vision_consensus.py", "tests/vision/test_vision_plates.py",
    "tests/sync/test_sync_plan.py", "tests/contracts/test_commitment.py", "tests/mqtt/test_mqtt_privacy.py",
    "tests/bridge/test_bridge_framer.py", "tests/bridge/test_bridge_codec.py", "tests/test_boundaries.py",
    "tests/booking/test_booking_requests.py", "tests/vision/test_vision_tracks.py",
})
ROOT = Path(__file__).resolve().parents[1]


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Under ``-m core`` the other test modules are not even imported (they load cv2, onnxruntime...)."""
    if config.getoption("markexpr") != "core" or not collection_path.name.startswith("test_"):
        return None
    core = collection_path.relative_to(ROOT).as_posix() in CORE_MODULES
    return collection_path.suffix == ".py" and not core


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.relative_to(ROOT).as_posix() in CORE_MODULES:
            item.add_marker(pytest.mark.core)


@pytest.fixture(scope="session")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Anvil]:
    log = Path(tmp_path_factory.mktemp("anvil")) / "anvil.log"
    with Anvil(AnvilConfig(), log_path=log) as node:
        yield node


@pytest.fixture(scope="session")
def w3(anvil: Anvil) -> Web3:
    return anvil.web3()


def live_children(pid: int) -> list[str]:
    """``"<pid> <command>"`` of each running (not zombie) child process of ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # exited while we looked
        state, ppid = text.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == pid and state != "Z":
            found.append(f"{stat.parent.name} {cmdline.strip()[:120]}")
    return found


LEFT_BY_WORKERS: list[str] = []  # what the xdist workers found left running (pytest_testnodedown)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    left = live_children(os.getpid())
    worker_output = getattr(session.config, "workeroutput", None)
    if worker_output is not None:  # an xdist worker: its exit status and output are not the run's
        worker_output["left_running"] = left
        return
    left = [*LEFT_BY_WORKERS, *(p for p in left if "execnet" not in p and "xdist" not in p)]
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("processes left running by the suite:\n  " + "\n  ".join(left), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """An xdist worker ended (``make test`` runs two): keep what it found left running."""
    LEFT_BY_WORKERS.extend(getattr(node, "workeroutput", {}).get("left_running", []))
