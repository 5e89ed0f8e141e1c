"""`parkgate status` staleness on the monotonic clock (issue #17): a wall-clock step neither makes a
running daemon STALE nor a dead one fresh. Real status files; real processes for the pid checks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from edge.daemon.status import StatusSnapshot, boot_id, read_status, render_status, write_status


def snapshot(pid: int, wall: float, mono: float, **extra: object) -> StatusSnapshot:
    return StatusSnapshot(gateway="gw", pid=pid, state="running", updated_at=wall, uptime_s=1.0,
                          heartbeat_mono=mono, boot_id=boot_id(), **extra)  # type: ignore[arg-type]


def test_a_clock_step_does_not_make_a_running_daemon_stale(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    # Written a moment ago by a live process, but stamped by a wall clock three days behind.
    write_status(path, snapshot(os.getpid(), time.time() - 3 * 86_400, time.monotonic(),
                                clock={"behind_ms": 3 * 86_400_000, "trusted": False}))
    status = read_status(path)
    assert not status["stale"] and status["age_s"] < 5
    assert any(line.startswith("clock behind by 3 d") for line in render_status(status))


def test_a_dead_daemon_is_stale_at_once_whatever_the_clocks_say(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(10)
    path = tmp_path / "status.json"
    write_status(path, snapshot(child.pid, time.time(), time.monotonic()))
    assert read_status(path)["stale"]


def test_a_daemon_that_stopped_refreshing_is_stale(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    write_status(path, snapshot(os.getpid(), time.time() + 3600, time.monotonic() - 30))
    status = read_status(path)
    assert status["stale"] and status["age_s"] >= 30, "a wall clock ahead does not make it fresh"


def test_a_snapshot_from_another_boot_falls_back_to_the_wall_clock(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    old = StatusSnapshot(gateway="gw", pid=1, state="running", updated_at=time.time() - 60, uptime_s=1.0,
                         heartbeat_mono=time.monotonic(), boot_id="another-boot")
    write_status(path, old)
    assert read_status(path)["stale"]
