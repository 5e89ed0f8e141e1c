"""`parkgate config check` and `parkgate doctor` as a user runs them (subprocess), plus the registry."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge.cli import main
from edge.config import Config, parse_config
from edge.doctor import (
    CheckResult,
    Status,
    discover_checks,
    format_table,
    register_check,
    registered_checks,
    run_checks,
)
from edge.store import Store
from edge.vision import bundle

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "docs" / "parkgate.example.toml"
Capture = pytest.CaptureFixture[str]


def parkgate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True,
                          timeout=60, cwd=REPO)


def parkgate_here(capsys: Capture, *args: str) -> subprocess.CompletedProcess[str]:
    """The same command in this process (faster: the CLI's imports are paid once per test run)."""
    code = main(list(args))
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(["parkgate", *args], code, captured.out, captured.err)


def write_config(tmp_path: Path, state_dir: Path, extra: str = "") -> Path:
    """A config whose state dir is under tmp_path, with the bundled models (the doctor loads them)."""
    conf = tmp_path / "parkgate.toml"
    conf.write_text(textwrap.dedent(f"""
        [gateway]
        state_dir = "{state_dir}"
        [vision]
        detector_model = "{bundle.DEFAULT_DETECTOR_PATH}"
        ocr_model = "{bundle.DEFAULT_OCR_PATH}"
        ocr_config = "{bundle.OCR_CONFIG_PATH}"
        """) + extra)
    return conf


def rows(stdout: str) -> dict[str, str]:
    """CHECK -> STATUS from the doctor's table."""
    out = {}
    for line in stdout.splitlines()[1:]:
        parts = line.split()
        for status in ("OK", "WARN", "FAIL", "SKIP"):
            if status in parts and not line.startswith(" "):
                out[" ".join(parts[:parts.index(status)])] = status
    return out


def test_config_check_ok_prints_summary() -> None:
    out = parkgate("config", "check", str(EXAMPLE))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith(f"OK {EXAMPLE}\n")
    assert "lane entry-1: entry, trigger presence_loop, gate parkgate-serial on /dev/ttyUSB0 @ 9600 baud" \
        in out.stdout


def test_config_check_lists_every_error_and_fails(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[gateway]\nlog_level = "loud"\n[[lanes]]\ngate = { baudrate = 1234 }\n[mqtt]\nprot = 1\n')
    out = parkgate("config", "check", str(bad))
    assert out.returncode == 1
    assert f"{bad}: 3 configuration error(s):" in out.stdout
    assert "gateway.log_level: 'loud' is not allowed; allowed: debug | info | warning | error" in out.stdout
    assert "lanes[0].gate.baudrate: 1234 is not allowed" in out.stdout
    assert "mqtt.prot: unknown key (did you mean 'port'?)" in out.stdout


def test_config_check_applies_the_access_policy_rules(tmp_path: Path, capsys: Capture) -> None:
    bad = tmp_path / "lists.toml"
    bad.write_text('[policy]\ndeny_list = ["0x1234"]\n')
    out = parkgate_here(capsys, "config", "check", str(bad))
    assert out.returncode == 1
    assert "policy.deny_list[0]: entry '0x1234' looks like a commitment but is not 0x + 64 hex digits" \
        in out.stdout


def test_config_check_missing_file(tmp_path: Path, capsys: Capture) -> None:
    out = parkgate_here(capsys, "config", "check", str(tmp_path / "none.toml"))
    assert out.returncode == 1 and "cannot read the config file" in out.stdout


def test_doctor_all_ok_and_never_creates_the_store(tmp_path: Path) -> None:
    """Before the first start the doctor (run as root) must not create the store: a root-owned store would
    lock the parkgate user's daemon out. Once the daemon made it, the doctor checks it."""
    state = tmp_path / "state"
    state.mkdir(mode=0o750)
    state.chmod(0o750)
    out = parkgate("doctor", "--config", str(write_config(tmp_path, state)))
    table = rows(out.stdout)
    assert table["config"] == table["state dir"] == table["model files"] == "OK", out.stdout
    assert table["store"] == "SKIP" and "the first parkgate run creates it" in out.stdout
    assert not (state / "parkgate.sqlite").exists()
    # Checks other modules register (serial, chain...) may fail here; the exit code follows the table.
    assert out.returncode == (1 if "FAIL" in table.values() else 0), out.stdout + out.stderr
    assert table["secret files"] == "SKIP"
    Store(state / "parkgate.sqlite").close()  # as the first parkgate run does
    again = rows(parkgate("doctor", "--config", str(write_config(tmp_path, state))).stdout)
    assert again["store"] == "OK"
    with Store(state / "parkgate.sqlite") as store:
        assert store.integrity_check() == []


def test_doctor_reports_fail_with_fix(tmp_path: Path) -> None:
    missing = tmp_path / "no-state"
    out = parkgate("doctor", "--config", str(write_config(tmp_path, missing)))
    assert out.returncode == 1
    assert rows(out.stdout)["state dir"] == "FAIL" and rows(out.stdout)["store"] == "FAIL"
    assert f"{missing} does not exist" in out.stdout
    assert f"fix: sudo install -d -m 0750 -o parkgate -g parkgate {missing}" in out.stdout


def test_doctor_flags_open_state_dir_and_public_secrets(tmp_path: Path, capsys: Capture) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o777)
    secret = tmp_path / "plate.key"
    secret.write_text("k")
    secret.chmod(0o644)
    extra = f'[chain]\nplate_key_file = "{secret}"\n'
    out = parkgate_here(capsys, "doctor", "--config", str(write_config(tmp_path, state, extra)))
    assert out.returncode == 1
    assert f"{state} is open to all users (mode 0777)" in out.stdout
    assert f"fix: chmod o-rwx {state}" in out.stdout
    assert "chain.plate_key_file" in out.stdout and f"fix: chmod 0600 {secret}" in out.stdout


def test_doctor_with_bad_config_fails_and_skips_the_rest(tmp_path: Path, capsys: Capture) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[metrics]\nport = 70000\n")
    out = parkgate_here(capsys, "doctor", "--config", str(bad))
    assert out.returncode == 1
    table = rows(out.stdout)
    assert table.pop("config") == "FAIL" and set(table.values()) == {"SKIP"}
    assert "metrics.port: 70000 is not allowed; allowed: 1..65535" in out.stdout


def test_doctor_flags_a_corrupt_store(tmp_path: Path, capsys: Capture) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o750)
    state.chmod(0o750)
    (state / "parkgate.sqlite").write_bytes(b"this is not a database" * 100)
    out = parkgate_here(capsys, "doctor", "--config", str(write_config(tmp_path, state)))
    assert out.returncode == 1 and rows(out.stdout)["store"] == "FAIL"
    assert "parkgate.sqlite" in out.stdout and "fix:" in out.stdout


def test_registry_runs_added_checks_and_contains_broken_ones() -> None:
    @register_check("test: always ok")
    def fine(config: Config) -> CheckResult:
        return CheckResult.ok(f"lot {config.gateway.lot_id}")

    @register_check("test: broken")
    def broken(config: Config) -> CheckResult:
        raise RuntimeError("boom")

    try:
        results = dict(run_checks(parse_config('[gateway]\nlot_id = "HARBOUR"\n')))
        assert results["test: always ok"] == CheckResult(Status.OK, "lot HARBOUR")
        assert results["test: broken"].status is Status.FAIL
        assert "RuntimeError: boom" in results["test: broken"].detail
        table = format_table([("test: broken", results["test: broken"])])
        assert "fix: report this" in table
    finally:
        from edge import doctor
        doctor._CHECKS.pop("test: always ok")
        doctor._CHECKS.pop("test: broken")


def test_doctor_checks_modules_are_discovered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "plugpkg" / "serialthing"
    pkg.mkdir(parents=True)
    (tmp_path / "plugpkg" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "doctor_checks.py").write_text(textwrap.dedent("""
        from edge.doctor import CheckResult, register_check

        @register_check("test: discovered")
        def check(config):
            return CheckResult.skip("no serial port in tests")
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        discover_checks(["plugpkg"])
        assert "test: discovered" in registered_checks()
    finally:
        from edge import doctor
        doctor._CHECKS.pop("test: discovered", None)
