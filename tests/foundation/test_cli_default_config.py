"""`parkgate chain status` as docs/install.md step 8 writes it, without --config (ops review s13): like the
other commands it reads /etc/parkgate/parkgate.toml when there is one."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge import config as config_module
from edge.cli import main


def test_chain_status_reads_the_default_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    state.mkdir()
    default = tmp_path / "parkgate.toml"
    default.write_text(f'[gateway]\nstate_dir = "{state}"\n')
    monkeypatch.setattr(config_module, "DEFAULT_CONFIG_PATH", default)
    assert main(["chain", "status"]) == 0
    out = capsys.readouterr().out
    assert "backlog" in out, out
    assert (state / "parkgate.sqlite").exists(), "the default config's store was read"
