"""The replay cache for remote commands: nonces seen within the freshness window.

Kept in a small SQLite table (``mqtt_command_nonces``) so a restart of the daemon does not reopen
the window for replaying a command captured just before it. The file may be the gateway's store
database (the table name is ours alone) or a file of its own. Rows older than the window are
pruned: a command that old is refused as stale before the nonce is even looked up, so the table
stays bounded by the number of genuine commands in one window.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS mqtt_command_nonces (
    nonce TEXT PRIMARY KEY,
    ts_ms INTEGER NOT NULL
)
"""


class NonceStore:
    """``nonce in store`` / ``store.remember(nonce, ts_ms, now_ms)``; safe to use from any thread."""

    def __init__(self, path: Path | str, window_ms: int) -> None:
        self.window_ms = window_ms
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout = 5000")
        self._db.execute(SCHEMA)

    def __contains__(self, nonce: object) -> bool:
        with self._lock:
            row = self._db.execute("SELECT 1 FROM mqtt_command_nonces WHERE nonce = ?", (str(nonce),))
            return row.fetchone() is not None

    def remember(self, nonce: str, ts_ms: int, now_ms: int) -> None:
        """Record ``nonce`` (durably) and forget the ones that have left the window."""
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO mqtt_command_nonces (nonce, ts_ms) VALUES (?, ?)",
                             (nonce, ts_ms))
            self._db.execute("DELETE FROM mqtt_command_nonces WHERE ts_ms < ?", (now_ms - self.window_ms,))

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM mqtt_command_nonces").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
