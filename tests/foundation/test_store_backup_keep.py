"""`parkgate store backup --keep N` (ops review s13, low finding): a backup from a timer must not fill the SD
card. After a good backup into <state_dir>/backups, all but the newest N backups there are deleted (default
7); other files, and backups written elsewhere with --out, are never touched."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from edge.store import Store

OLD = [f"parkgate.sqlite-2026010{day}T030000Z" for day in range(1, 10)]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True,
                          timeout=60)


def setup(tmp_path: Path) -> tuple[Path, Path]:
    state = tmp_path / "state"
    state.mkdir()
    Store(state / "parkgate.sqlite").close()
    folder = state / "backups"
    folder.mkdir()
    for n, name in enumerate(OLD):
        (folder / name).write_bytes(b"old backup")
        os.utime(folder / name, (1_767_000_000 + n * 86_400,) * 2)
    (folder / "notes.txt").write_text("mine\n")
    config = tmp_path / "parkgate.toml"
    config.write_text(f'[gateway]\nstate_dir = "{state}"\n')
    return config, folder


def test_backup_keeps_the_newest_n(tmp_path: Path) -> None:
    config, folder = setup(tmp_path)
    made = cli("store", "backup", "--config", str(config), "--keep", "3")
    assert made.returncode == 0, made.stdout + made.stderr
    kept = sorted(p.name for p in folder.iterdir())
    new = [name for name in kept if name not in OLD and name != "notes.txt"]
    assert len(new) == 1 and kept == sorted([*OLD[-2:], *new, "notes.txt"]), kept
    assert made.stdout.count("deleted the older backup") == len(OLD) - 2


def test_the_default_keeps_seven_and_zero_keeps_all(tmp_path: Path) -> None:
    config, folder = setup(tmp_path)
    assert cli("store", "backup", "--config", str(config), "--keep", "0").returncode == 0
    assert len(list(folder.iterdir())) == len(OLD) + 2
    out = tmp_path / "elsewhere.sqlite"
    assert cli("store", "backup", "--config", str(config), "--out", str(out)).returncode == 0
    assert len(list(folder.iterdir())) == len(OLD) + 2, "--out prunes nothing"
    time.sleep(1.1)  # a new name (backups are named by the second)
    assert cli("store", "backup", "--config", str(config)).returncode == 0
    assert len([p for p in folder.iterdir() if p.name != "notes.txt"]) == 7


def test_a_bad_keep_value_is_refused(tmp_path: Path) -> None:
    config, folder = setup(tmp_path)
    bad = cli("store", "backup", "--config", str(config), "--keep", "-1")
    assert bad.returncode == 2 and "'-1' is not allowed; allowed: a whole number 0 or more" in bad.stderr
    assert len(list(folder.iterdir())) == len(OLD) + 1
