"""`parkgate mqtt keygen` / `parkgate mqtt sign` produce what the gateway accepts."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from edge.cli import main
from edge.clock import wall_clock_ms
from edge.mqtt.commands import Command, CommandPolicy, load_key, verify_command
from edge.tools.demo import harness as h

THREE_DAYS_MS = 3 * 86_400_000


def test_keygen_then_sign_gives_an_accepted_command(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    key_file = tmp_path / "gw-1.key"
    assert main(["mqtt", "keygen", "--out", str(key_file)]) == 0
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert main(["mqtt", "keygen", "--out", str(key_file)]) == 1  # never overwrites a key
    capsys.readouterr()
    ts = 1_795_630_000_000
    assert main(["mqtt", "sign", "--key-file", str(key_file), "--gateway", "gw-1", "--lane", "in-1",
                 "--action", "hold", "--ts", str(ts)]) == 0
    raw = capsys.readouterr().out.strip().encode()
    policy = CommandPolicy("gw-1", frozenset({"in-1"}))
    verdict = verify_command(raw, load_key(key_file), ts, frozenset(), policy)
    assert isinstance(verdict, Command) and verdict.action == "hold"


def test_sign_with_an_unusable_key_file_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.key"
    bad.write_text("hello")
    assert main(["mqtt", "sign", "--key-file", str(bad), "--gateway", "gw-1", "--lane", "in-1",
                 "--action", "open"]) == 1
    assert "must be hex text" in capsys.readouterr().err


def test_sign_dates_with_the_best_time_of_the_daemon_running_here(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """On the gateway itself while its wall clock is 3 days behind (a Pi booted without NTP), a command
    signed "now" carried the bare wall clock and the daemon, judging with its best time, refused it as
    stale; signed with --config it carries the running daemon's best time (status.json), --ts still wins."""
    key_file, state, config = tmp_path / "gw-1.key", tmp_path / "state", tmp_path / "parkgate.toml"
    assert main(["mqtt", "keygen", "--out", str(key_file)]) == 0
    state.mkdir()
    config.write_text(h.toml_text({"gateway": {"id": "gw-1", "lot_id": "LOT-1", "state_dir": str(state)}},
                                  [{"name": "in-1", "gate": {"port": "/dev/null"}}]))
    best = wall_clock_ms() + THREE_DAYS_MS  # the daemon's best time: this machine's clock is 3 days behind
    h.daemon_status_behind(state, "gw-1", best, THREE_DAYS_MS)
    sign = ["mqtt", "sign", "--config", str(config), "--key-file", str(key_file), "--gateway", "gw-1",
            "--lane", "in-1", "--action", "open"]
    capsys.readouterr()
    assert main(sign) == 0
    raw = capsys.readouterr().out.strip().encode()
    assert main([*sign, "--ts", "1795630000000"]) == 0
    overridden = json.loads(capsys.readouterr().out)
    policy = CommandPolicy("gw-1", frozenset({"in-1"}))
    verdict = verify_command(raw, load_key(key_file), best, frozenset(), policy)
    assert isinstance(verdict, Command), verdict  # was: refused as stale
    assert overridden["ts"] == 1795630000000


SIGN = ["mqtt", "sign", "--gateway", "gw-1", "--lane", "in-1", "--action", "open"]


def signed_now(key_file: Path, out: str) -> Command | object:
    """The verdict on ``out`` (stdout: the signed command only), judged now by this machine's clock."""
    policy = CommandPolicy("gw-1", frozenset({"in-1"}))
    return verify_command(out.strip().encode(), load_key(key_file), wall_clock_ms(), frozenset(), policy)


def test_sign_without_a_readable_default_config_dates_with_this_clock_and_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The default config is 0640 root:parkgate: a key holder outside the group (or a config that does not
    parse) got exit 2 where signing used to work. Now: signed with this machine's clock, a note on stderr."""
    key_file, default = tmp_path / "gw-1.key", tmp_path / "parkgate.toml"
    assert main(["mqtt", "keygen", "--out", str(key_file)]) == 0
    default.write_text("[gateway\nid = ")  # unreadable to this user, or broken: the same answer
    monkeypatch.setattr("edge.config.DEFAULT_CONFIG_PATH", default)
    capsys.readouterr()
    assert main([*SIGN, "--key-file", str(key_file)]) == 0
    out, err = capsys.readouterr()
    assert isinstance(signed_now(key_file, out), Command), out
    assert f"cannot use {default}" in err and "this machine's clock" in err
    assert "--config FILE" in err and "--ts MS" in err


def test_sign_with_an_explicit_config_that_fails_says_why_and_signs_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key_file, config = tmp_path / "gw-1.key", tmp_path / "broken.toml"
    assert main(["mqtt", "keygen", "--out", str(key_file)]) == 0
    config.write_text("[gateway\nid = ")
    capsys.readouterr()
    assert main([*SIGN, "--key-file", str(key_file), "--config", str(config)]) == 2
    out, err = capsys.readouterr()
    assert out == ""  # nothing for mosquitto_pub -m "$(...)" to publish
    assert f"cannot read --config {config}" in err and str(config) in err


def test_sign_with_a_config_but_no_daemon_running_says_it_used_this_clock(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key_file, state, config = tmp_path / "gw-1.key", tmp_path / "state", tmp_path / "parkgate.toml"
    assert main(["mqtt", "keygen", "--out", str(key_file)]) == 0
    state.mkdir()
    config.write_text(h.toml_text({"gateway": {"id": "gw-1", "lot_id": "LOT-1", "state_dir": str(state)}},
                                  [{"name": "in-1", "gate": {"port": "/dev/null"}}]))
    capsys.readouterr()
    assert main([*SIGN, "--key-file", str(key_file), "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    assert isinstance(signed_now(key_file, out), Command), out
    assert f"no running daemon's status at {state / 'status.json'}: dated with this machine's clock" in err
