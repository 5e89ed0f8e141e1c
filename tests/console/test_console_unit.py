"""systemd/parkgate-console.service: hardened like the daemon's unit, checked with systemd's own tools
(`make test` installs them; they skip with the reason elsewhere, like tests/systemd)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "parkgate-console.service"
MAX_EXPOSURE = 2.0


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.skip("systemd-analyze not installed (make test installs the Debian 'systemd' package)")
    return subprocess.run([path, *args], capture_output=True, text=True, timeout=60, check=False)


def test_console_unit_exposure_is_at_most_2() -> None:
    out = analyze("security", "--offline=yes", str(UNIT))
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out.stdout)
    assert match, out.stdout + out.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE


def test_console_unit_verifies_and_runs_the_console(tmp_path: Path) -> None:
    text = UNIT.read_text()
    exec_start = "ExecStart=/opt/parkgate/.venv/bin/parkgate"
    assert f"{exec_start} console serve --config /etc/parkgate/parkgate.toml" in text
    assert "User=parkgate" in text and "IPAddressDeny=any" in text and "PrivateDevices=yes" in text
    copy = tmp_path / "parkgate-console.service"
    copy.write_text(text.replace(exec_start, f"ExecStart={sys.executable} -m edge.cli"))
    out = analyze("verify", str(copy))
    assert out.returncode == 0 and out.stderr == "", out.stderr
