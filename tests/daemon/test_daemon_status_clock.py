"""`parkgate status` staleness on the monotonic clock (issue #17): a wall-clock step neither makes a
running daemon STALE nor a dead one fresh. Real status files; real processes for the pid checks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from edge.daemon.status import LaneStatus, StatusSnapshot, boot_id, read_status, render_status, write_status


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


def test_how_long_ago_an_error_was_is_told_on_the_daemons_best_time(tmp_path: Path) -> None:
    """The wall clock 3 days behind: the chain's and the gate's last errors are dated with the daemon's best
    time (3 days ahead of the wall clock); "N s ago" was measured from the bare wall clock, so each read
    "(0 s ago)" for as long as the clock stayed behind, however old the error."""
    path = tmp_path / "status.json"
    wall_ms = int(time.time() * 1000)
    best_ms = wall_ms + 3 * 86_400_000
    lane = LaneStatus("entry-1", "idle", True,
                      gate_error={"error": "status poll failed", "at_ms": best_ms - 90_000})
    chain = {"state": "ok", "last_error": "node down", "last_error_at_ms": best_ms - 600_000}
    write_status(path, snapshot(os.getpid(), wall_ms / 1000, time.monotonic(), lanes=(lane,), chain=chain,
                                clock={"wall_ms": wall_ms, "best_ms": best_ms, "behind_ms": 3 * 86_400_000,
                                       "trusted": False}))
    lines = render_status(read_status(path))
    assert "lane entry-1 gate last error: status poll failed (90 s ago)" in lines, lines
    assert "chain last error: node down (600 s ago)" in lines, lines
