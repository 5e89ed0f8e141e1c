"""The command line: --help teaches, version prints, unknown commands fail clearly."""

import subprocess
import sys


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge.cli", *args],
                          capture_output=True, text=True, timeout=60)


def test_help_lists_commands() -> None:
    out = run_cli("--help")
    assert out.returncode == 0
    assert "version" in out.stdout
    assert "parkgate config check" in out.stdout


def test_version() -> None:
    out = run_cli("version")
    assert out.returncode == 0
    assert out.stdout.startswith("parkgate ")


def test_unknown_command_fails() -> None:
    out = run_cli("no-such-command")
    assert out.returncode != 0
    assert "invalid choice" in out.stderr
