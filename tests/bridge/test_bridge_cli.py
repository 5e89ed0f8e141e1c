"""`parkgate gate status|open|watch` as an installer runs them, against the emulator on a pty."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from bridge_harness import running_emulator


def gate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge.cli", "gate", *args], capture_output=True, text=True,
                          timeout=30)


def test_status_open_watch_against_the_emulator(tmp_path: Path) -> None:
    with running_emulator(tmp_path) as emulator:
        port = str(emulator.link)
        status = gate("status", "--port", port)
        assert status.returncode == 0, status.stderr
        assert status.stdout.startswith("position=CLOSED presence=0 safety=0 held=0 faults=none opens=0")
        opened = gate("open", "--port", port, "--pulse-ms", "400")
        assert opened.returncode == 0 and "acknowledged" in opened.stdout
        assert emulator.state()["opens"] == 1
        emulator.wait_for(lambda s: s["position"] == "CLOSED" and not s["output"], what="closed again")
        emulator.command("presence 1")
        watch = subprocess.Popen([sys.executable, "-m", "edge.cli", "gate", "watch", "--port", port,
                                  "--seconds", "3"], stdout=subprocess.PIPE, text=True)
        assert watch.stdout is not None
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z status position=", watch.stdout.readline())
        emulator.command("safety 1")
        assert re.fullmatch(r"\S+Z safety 1", watch.stdout.readline().strip())
        watch.kill()
        watch.wait()


def test_missing_port_fails_clearly(tmp_path: Path) -> None:
    out = gate("status", "--port", str(tmp_path / "ttyUSB9"))
    assert out.returncode == 2
    assert "ttyUSB9" in out.stderr and "No such file" in out.stderr


def test_bad_pulse_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    with running_emulator(tmp_path) as emulator:
        out = gate("open", "--port", str(emulator.link), "--pulse-ms", "5")
        assert out.returncode == 1
        assert "pulse_ms=5 out of range 50..30000" in out.stderr
        assert emulator.state()["opens"] == 0
