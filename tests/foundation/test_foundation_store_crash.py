"""kill -9 at random moments: every event acknowledged (printed after commit) survives, whole."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from edge.store import GateEventRow, Store

WRITER = Path(__file__).with_name("store_writer.py")
REPO = Path(__file__).resolve().parents[2]


def run_and_kill(db: Path, rng: random.Random) -> list[str]:
    """Start the writer, SIGKILL it at a random moment, return the ids it acknowledged."""
    env = os.environ | {"PYTHONPATH": str(REPO)}
    with tempfile.TemporaryFile("w+") as errors:
        proc = subprocess.Popen([sys.executable, str(WRITER), str(db)], stdout=subprocess.PIPE,
                                stderr=errors, text=True, env=env)
        assert proc.stdout is not None
        first = proc.stdout.readline()
        if first != "ready\n":
            proc.kill()
            proc.wait(timeout=10)
            errors.seek(0)
            pytest.fail(f"writer failed to start: {first!r} {errors.read()}")
        time.sleep(rng.uniform(0.0, 0.25))
        proc.send_signal(signal.SIGKILL)
        # Read through the same buffered reader as readline(): nothing it read ahead is lost.
        out = proc.stdout.read()
        proc.stdout.close()
        assert proc.wait(timeout=10) == -signal.SIGKILL
    lines = out.splitlines()
    # A line cut by the kill mid-write is not an acknowledgement.
    if lines and not out.endswith("\n"):
        lines.pop()
    return lines


def assert_consistent(db: Path, acknowledged: set[str]) -> int:
    with Store(db) as store:
        assert store.integrity_check() == []
        events = [ev for _, ev in store.gate_events(limit=1_000_000)]
        ids = {ev.event_id for ev in events}
        missing = acknowledged - ids
        assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:3]}"
        for ev in events:  # re-validates every field: a torn row would fail GateEventRow's checks
            assert GateEventRow(**{**ev.__dict__}) == ev
            assert ev.recorded_at_ms is not None
        orphans = store.conn.execute(
            "SELECT count(*) FROM gate_events g WHERE (SELECT count(*) FROM outbox o "
            "WHERE o.event_id = g.event_id AND o.destination IN ('chain', 'mqtt')) <> 2").fetchone()[0]
        assert orphans == 0
        assert store.conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 2 * len(events)
        return len(events)


def test_kill_9_loses_no_acknowledged_event(tmp_path: Path) -> None:
    db = tmp_path / "crash.sqlite"
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    acknowledged: set[str] = set()
    for kills in range(1, 21):
        acknowledged |= set(run_and_kill(db, rng))
        stored = assert_consistent(db, acknowledged)
        # Only the event committed but not yet printed (or cut mid-line) at each kill may be extra.
        assert len(acknowledged) <= stored <= len(acknowledged) + kills
    assert acknowledged, "the writer never acknowledged anything"
    # The file is a sane SQLite database for a plain client too.
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
