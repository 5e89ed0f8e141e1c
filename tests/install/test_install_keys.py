"""`parkgate chain plate-key new`: the lot secret the daemon reads, private, never overwritten."""

from __future__ import annotations

import stat
from pathlib import Path

from edge.cli import main
from edge.config import config_from_mapping
from edge.daemon.service import plate_key


def test_plate_key_new_writes_a_private_key_the_daemon_reads(tmp_path: Path, capsys) -> None:
    out = tmp_path / "plate-key"
    assert main(["chain", "plate-key", "new", "--out", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    cfg = config_from_mapping({"gateway": {"state_dir": str(tmp_path)},
                               "chain": {"plate_key_file": str(out)}})
    key = plate_key(cfg)
    assert len(key) == 32 and out.read_text() == key.hex() + "\n"
    assert main(["chain", "plate-key", "new", "--out", str(out)]) == 1  # never overwrites a lot secret
    assert "File exists" in capsys.readouterr().err and plate_key(cfg) == key
