"""`parkgate store backup|recover` on a full state directory (ops review s13, finding 2): nothing is lost,
no partial file is left, the error is one clear line. A real full file system: a small tmpfs filled to the
last byte (full_disk.py; needs root with CAP_SYS_ADMIN, else skipped)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from full_disk import fill, tmpfs

from edge.store import Store

ROWS = 1000
FLOOR_MS = 1_800_000_000_000


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True,
                          timeout=120)


def big_store(path: Path) -> Path:
    """A store of about 1.2 MB: ROWS audited manual actions of 900 characters each."""
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE clock_floor SET floor_ms = ?", (FLOOR_MS,))
    rows = [(FLOOR_MS + i, "entry-1", "open", "socket", "op", "r" * 900, "ok") for i in range(ROWS)]
    conn.executemany("INSERT INTO manual_actions (at_ms, lane, action, source, operator, reason, result) "
                     "VALUES (?,?,?,?,?,?,?)", rows)
    conn.commit()
    conn.close()
    return path


def config_for(work: Path, state: Path) -> str:
    path = work / "parkgate.toml"
    path.write_text(f'[gateway]\nstate_dir = "{state}"\n')
    return str(path)


def files(state: Path) -> list[str]:
    """The state dir's files, without the filler and the store's own -wal/-shm (reading it may make them)."""
    ignored = {"filler", "parkgate.sqlite-wal", "parkgate.sqlite-shm"}
    return sorted(p.name for p in state.iterdir() if p.name not in ignored)


def rows_in(store: Path) -> int:
    with Store(store) as opened:
        return int(opened.conn.execute("SELECT count(*) FROM manual_actions").fetchone()[0])


def assert_clean_failure(result: subprocess.CompletedProcess[str], store: Path) -> None:
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "Traceback" not in out and f"{store} is unchanged" in result.stdout, out
    assert "free space" in result.stdout, out


def test_recover_from_a_backup_on_a_full_disk_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "state", "3m") as state:
        store = big_store(state / "parkgate.sqlite")
        config = config_for(tmp_path, state)
        backup = tmp_path / "good-backup"  # kept off the full disk
        assert cli("store", "backup", "--config", config, "--out", str(backup)).returncode == 0
        before = files(state)
        fill(state)
        result = cli("store", "recover", "--config", config, "--from", str(backup))
        assert_clean_failure(result, store)
        assert files(state) == before, "no .restoring, no .replaced: the store where it was"
        (state / "filler").unlink()
        assert cli("store", "check", "--config", config).returncode == 0
        assert rows_in(store) == ROWS


def test_backup_on_a_full_disk_leaves_no_partial_file(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "state", "3m") as state:
        big_store(state / "parkgate.sqlite")
        config = config_for(tmp_path, state)
        (state / "backups").mkdir()
        fill(state)
        result = cli("store", "backup", "--config", config)
        out = result.stdout + result.stderr
        assert result.returncode == 1 and "Traceback" not in out, out
        assert "failed" in result.stdout and "no backup was written" in result.stdout, out
        assert list((state / "backups").iterdir()) == [], "no 0-byte backup"


def test_salvage_on_a_full_disk_leaves_the_store_and_no_partial_file(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "state", "3m") as state:
        store = big_store(state / "parkgate.sqlite")
        config = config_for(tmp_path, state)
        before = files(state)
        filler = fill(state)
        result = cli("store", "recover", "--config", config)
        assert_clean_failure(result, store)
        assert files(state) == before, "no .salvage-* left"
        # Part-way: room for the new schema and some rows, not all of them.
        os.truncate(filler, filler.stat().st_size - 700 * 1024)
        result = cli("store", "recover", "--config", config)
        assert_clean_failure(result, store)
        assert files(state) == before, "no partial .salvage-* left"
        filler.unlink()
        assert rows_in(store) == ROWS
