"""The store is never silently replaced (issue #17): real SQLite files, damaged the way disks damage them
(truncated to zero, lost, garbled pages in the middle), and the `parkgate store` commands as subprocesses."""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edge.clock import OFFSET_FILE_ENV, TrustedClock
from edge.config import config_from_mapping
from edge.daemon.service import open_store
from edge.store import GateEventRow, Store, StoreDamagedError, integrity

EVENTS = 3000


def filled_store(path: Path, events: int = EVENTS) -> Path:
    """A real store with ``events`` gate events, each with an MQTT outbox row; WAL checkpointed."""
    with Store(path) as store, store.transaction():
        for n in range(events):
            row = GateEventRow(f"evt-{n:08d}", "in-1", "entry", "denied", "no_booking", 1_796_000_000_000 + n,
                               plate_masked="AB***D")
            store.record_gate_event(row, ("mqtt",))
    return path


def garble_pages(path: Path, pages: int = 4, seed: int = 7) -> list[int]:
    """Overwrite ``pages`` pages in the middle of the file with random bytes; their numbers."""
    page_size = 4096
    total = path.stat().st_size // page_size
    rng = random.Random(seed)
    hit = sorted(rng.sample(range(total // 3, 2 * total // 3), pages))
    with path.open("r+b") as handle:
        for page in hit:
            handle.seek(page * page_size)
            handle.write(rng.randbytes(page_size))
    return hit


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def config_file(tmp_path: Path, state: Path) -> Path:
    path = tmp_path / "parkgate.toml"
    path.write_text(f'[gateway]\nstate_dir = "{state}"\n')
    return path


def test_the_first_store_marks_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "parkgate.sqlite"
    Store(path).close()
    assert integrity.marker_path(path).is_file()
    assert integrity.preflight(path) is None


def test_a_zero_length_store_is_refused_naming_the_file_and_the_recovery(tmp_path: Path) -> None:
    path = filled_store(tmp_path / "parkgate.sqlite", 10)
    path.write_bytes(b"")  # what a crash on some file systems leaves
    with pytest.raises(StoreDamagedError) as refused:
        Store(path)
    message = str(refused.value)
    assert str(path) in message and "empty (0 bytes)" in message and "parkgate store recover" in message
    assert path.stat().st_size == 0, "nothing was created in its place"


def test_a_missing_store_after_a_first_start_is_refused(tmp_path: Path) -> None:
    path = filled_store(tmp_path / "parkgate.sqlite", 10)
    path.unlink()
    with pytest.raises(StoreDamagedError, match="is missing"):
        Store(path)
    assert not path.exists()


def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "parkgate.sqlite"
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreDamagedError, match="not an SQLite database"):
        Store(path)


def test_garbled_pages_stop_the_daemon_and_recover_salvages_the_rest(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    path = filled_store(state / "parkgate.sqlite")
    garble_pages(path)
    cfg = config_from_mapping({"gateway": {"state_dir": str(state)}}, "test")
    with pytest.raises(StoreDamagedError) as refused:  # what `parkgate run` does at start
        open_store(cfg, TrustedClock()).close()
    assert str(path) in str(refused.value) and "parkgate store recover" in str(refused.value)

    config = config_file(tmp_path, state)
    check = cli("store", "check", "--config", str(config))
    assert check.returncode == 1 and "DAMAGED" in check.stdout, check.stdout + check.stderr
    doctor = cli("doctor", "--config", str(config))
    assert "store" in doctor.stdout and "parkgate store recover" in doctor.stdout, doctor.stdout

    recover = cli("store", "recover", "--config", str(config))
    assert recover.returncode == 0, recover.stdout + recover.stderr
    aside = [p for p in state.iterdir() if ".damaged-" in p.name and not p.name.endswith(("-wal", "-shm"))]
    assert len(aside) == 1 and aside[0].stat().st_size > 0, "the damaged file is kept aside"
    assert cli("store", "check", "--config", str(config)).returncode == 0
    with open_store(cfg, TrustedClock()) as store:
        counts = store.counts()
    # Four 4 KiB pages hold some tens of rows (or index entries only): at most those are lost.
    assert EVENTS - 400 < counts["gate_events"] <= EVENTS, counts
    assert EVENTS - 400 < counts["outbox"] <= EVENTS, counts


def test_backup_is_consistent_while_a_writer_runs(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    path = filled_store(state / "parkgate.sqlite", 200)
    stop = threading.Event()

    def writer() -> None:
        with Store(path) as store:
            n = 0
            while not stop.is_set():
                store.record_gate_event(GateEventRow(f"late-{n:08d}", "in-1", "entry", "denied", "no_read",
                                                     1_796_000_000_000), ("mqtt",))
                n += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        result = cli("store", "backup", "--config", str(config_file(tmp_path, state)))
    finally:
        stop.set()
        thread.join(10)
    assert result.returncode == 0 and "checked OK" in result.stdout, result.stdout + result.stderr
    copy = next((state / "backups").iterdir())
    assert oct(copy.stat().st_mode & 0o777) == "0o600"
    conn = sqlite3.connect(copy)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        events = conn.execute("SELECT count(*) FROM gate_events").fetchone()[0]
        outbox = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
    finally:
        conn.close()
    assert events >= 200 and events == outbox, "one transaction's rows are all in the copy or none"


def test_recover_from_a_backup_after_the_store_was_zeroed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    path = filled_store(state / "parkgate.sqlite", 50)
    config = config_file(tmp_path, state)
    backup = tmp_path / "copy.sqlite"
    assert cli("store", "backup", "--config", str(config), "--out", str(backup)).returncode == 0
    path.write_bytes(b"")
    assert cli("store", "check", "--config", str(config)).returncode == 1
    salvage = cli("store", "recover", "--config", str(config))
    assert salvage.returncode == 1 and "--from BACKUP" in salvage.stdout
    restore = cli("store", "recover", "--config", str(config), "--from", str(backup))
    assert restore.returncode == 0, restore.stdout + restore.stderr
    with Store(path) as store:
        assert store.counts()["gate_events"] == 50


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through file modes; the read-only mount test "
                    "in tests/daemon/test_daemon_store_faults.py covers root")
def test_a_read_only_directory_is_a_clear_error(tmp_path: Path) -> None:
    path = filled_store(tmp_path / "ro" / "parkgate.sqlite", 5) if (tmp_path / "ro").mkdir() is None else None
    assert path is not None
    os.chmod(path.parent, 0o555)
    try:
        with pytest.raises(Exception, match="cannot be written|read-only"):
            Store(path)
    finally:
        os.chmod(path.parent, 0o755)


def test_doctor_says_when_the_clock_is_behind_the_store(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    filled_store(state / "parkgate.sqlite", 5)
    with Store(state / "parkgate.sqlite") as store:
        store.raise_clock_floor(int(time.time() * 1000))  # the store has seen the true time
    config = config_file(tmp_path, state)
    offset = tmp_path / "offset"
    offset.write_text(f"{-3 * 86_400}\n")  # booted three days behind (edge.clock's test hook)
    behind = subprocess.run([sys.executable, "-m", "edge.cli", "doctor", "--config", str(config)],
                            capture_output=True, text=True, timeout=60,
                            env=os.environ | {OFFSET_FILE_ENV: str(offset)})
    clock = [line for line in behind.stdout.splitlines() if line.startswith("clock ")]
    assert clock and "FAIL" in clock[0] and "behind" in clock[0], behind.stdout
    right = cli("doctor", "--config", str(config))
    clock = [line for line in right.stdout.splitlines() if line.startswith("clock ")]
    assert clock and "OK" in clock[0], right.stdout
