"""A second Store opened in the daemon's process (the chain sync thread, an MQTT list command) must not
drop the daemon's SQLite locks: with them gone, another process closing its connection checkpoints and
deletes the WAL under the daemon, and what the daemon commits next is invisible to everyone else (and the
file ends malformed). Real SQLite files, real second processes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from edge.store import ListEntry, Store

COUNT = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
         "print(c.execute('SELECT count(*) FROM access_list_entries').fetchone()[0]); c.close()")


def rows_seen_by_another_process(path: Path) -> int:
    out = subprocess.run([sys.executable, "-c", COUNT, str(path)], capture_output=True, text=True, check=True,
                         timeout=60)
    return int(out.stdout)


def test_a_second_store_in_the_process_keeps_the_daemons_writes_visible(tmp_path: Path) -> None:
    path = tmp_path / "parkgate.sqlite"
    daemon = Store(path)
    try:
        daemon.put_list_entry(ListEntry("deny", "AB123"))
        Store(path).close()  # as the chain sync thread or an MQTT list command does
        assert rows_seen_by_another_process(path) == 1  # e.g. `parkgate events`, then it closes
        for n in range(50):
            daemon.put_list_entry(ListEntry("allow", f"CD{n}"))
        assert rows_seen_by_another_process(path) == 51
    finally:
        daemon.close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM access_list_entries").fetchone()[0] == 51
    finally:
        conn.close()


def test_parkgate_events_on_a_stopped_daemons_store_leaves_no_journal_files(tmp_path: Path) -> None:
    """A reader run as another user (root) must not leave -wal/-shm files the daemon's user cannot write."""
    state = tmp_path / "state"
    state.mkdir()
    Store(state / "parkgate.sqlite").close()  # what a cleanly stopped daemon leaves
    config = tmp_path / "parkgate.toml"
    config.write_text(f'[gateway]\nstate_dir = "{state}"\n')
    out = subprocess.run([sys.executable, "-m", "edge.cli", "events", "--config", str(config)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "0 event(s)" in out.stdout, out.stderr
    assert sorted(p.name for p in state.iterdir()) == ["parkgate.sqlite", "parkgate.sqlite.initialised"]
