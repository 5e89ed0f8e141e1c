"""The replay cache for remote commands: the nonces of every correctly signed command, kept long enough.

Kept in a small SQLite table (``mqtt_command_nonces``) so a restart of the daemon does not reopen
the window for replaying a command captured just before it. The file may be the gateway's store
database (the table names are ours alone) or a file of its own.

A clock step must not reopen it either (issue #17). So:

- the nonce of every correctly signed command is kept, accepted or not (a captured command refused as
  stale must stay refused when the clock steps back into its window);
- a nonce is forgotten only when its command is stale by the caller's best time (``edge.clock``) AND it
  has been kept for longer than the window on this process's monotonic clock (rows found at start count
  from the start), so neither a wall-clock step forward nor a restart forgets it early;
- the newest timestamp ever forgotten is persisted (``mqtt_command_nonce_floor``): a command dated at
  or before it is refused as stale whatever the clock says (:attr:`NonceStore.min_ts_ms`), so a
  forgotten nonce can never be replayed.

The table stays bounded by the number of genuine (correctly signed) commands in one window.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS mqtt_command_nonces (
    nonce TEXT PRIMARY KEY,
    ts_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS mqtt_command_nonce_floor (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    min_ts_ms INTEGER NOT NULL
);
INSERT OR IGNORE INTO mqtt_command_nonce_floor (id, min_ts_ms) VALUES (1, 0);
"""


class NonceStore:
    """``nonce in store`` / ``store.remember(nonce, ts_ms, now_ms)``; safe to use from any thread.
    ``mono_s`` is the monotonic clock (seconds) the retention is measured on (injectable for tests)."""

    def __init__(self, path: Path | str, window_ms: int,
                 mono_s: Callable[[], float] = time.monotonic) -> None:
        self.window_ms = window_ms
        self._mono_s = mono_s
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout = 5000")
        self._db.executescript(SCHEMA)
        self._opened_s = mono_s()
        self._kept_since: dict[str, float] = {}  # nonces seen by this process -> when (monotonic)
        self._min_ts_ms = int(self._db.execute(
            "SELECT min_ts_ms FROM mqtt_command_nonce_floor WHERE id = 1").fetchone()[0])

    def __contains__(self, nonce: object) -> bool:
        with self._lock:
            row = self._db.execute("SELECT 1 FROM mqtt_command_nonces WHERE nonce = ?", (str(nonce),))
            return row.fetchone() is not None

    @property
    def min_ts_ms(self) -> int:
        """Commands dated at or before this are refused: their nonces may have been forgotten."""
        with self._lock:
            return self._min_ts_ms

    def remember(self, nonce: str, ts_ms: int, now_ms: int) -> None:
        """Record ``nonce`` (durably) and forget the ones both stale by ``now_ms`` and kept long enough."""
        with self._lock:
            self._kept_since.setdefault(nonce, self._mono_s())
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT OR IGNORE INTO mqtt_command_nonces (nonce, ts_ms) VALUES (?, ?)",
                                 (nonce, ts_ms))
                self._forget_old(now_ms)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _forget_old(self, now_ms: int) -> None:
        now_s, window_s = self._mono_s(), self.window_ms / 1000
        stale = self._db.execute("SELECT nonce, ts_ms FROM mqtt_command_nonces WHERE ts_ms < ?",
                                 (now_ms - self.window_ms,)).fetchall()
        gone = [(n, ts) for n, ts in stale if now_s - self._kept_since.get(n, self._opened_s) > window_s]
        if not gone:
            return
        self._db.executemany("DELETE FROM mqtt_command_nonces WHERE nonce = ?", [(n,) for n, _ in gone])
        newest = max(ts for _, ts in gone)
        if newest > self._min_ts_ms:
            self._db.execute("UPDATE mqtt_command_nonce_floor SET min_ts_ms = ? WHERE id = 1", (newest,))
            self._min_ts_ms = newest
        for n, _ in gone:
            self._kept_since.pop(n, None)

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM mqtt_command_nonces").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
