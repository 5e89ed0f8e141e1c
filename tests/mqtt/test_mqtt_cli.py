"""`parkgate mqtt keygen` / `parkgate mqtt sign` produce what the gateway accepts."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from edge.cli import main
from edge.mqtt.commands import Command, CommandPolicy, load_key, verify_command


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
