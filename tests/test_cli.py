"""The command line: --help teaches, version prints, unknown commands fail clearly."""

import subprocess
import sys
from pathlib import Path

import pytest

from edge.cli import main


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


@pytest.mark.parametrize("args", [
    ["booking", "add", "--plate", "AB123CD", "--from", "", "--until", "2030-01-01"],
    ["booking", "add", "--plate", "AB123CD", "--from", "2030-01-01", "--until", " "],
    ["list", "allow", "add", "AB123CD", "--from", ""]])
def test_an_empty_time_option_is_named_not_taken_as_absent(
        args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--from ""` is no time: refused with the allowed forms (the one parser of typed times once took
    it as absent, and `booking add`, whose --from and --until are required, failed an assertion)."""
    config = tmp_path / "parkgate.toml"
    config.write_text(f'[gateway]\nstate_dir = "{tmp_path}"\n')
    assert main([*args, "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "is not a time; allowed: ISO 8601" in err and "Traceback" not in err, err
