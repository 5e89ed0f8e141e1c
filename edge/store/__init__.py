"""Durable local state of the gateway (SQLite, WAL, synchronous=FULL).

Use::

    from edge.store import Store, GateEventRow, new_event_id
    with Store(path) as store:
        store.record_gate_event(GateEventRow(...), destinations=("chain", "mqtt"))

Schema and how to append a migration: ``edge.store.schema``. Threading and durability rules:
``edge.store.store``. Rows: ``edge.store.rows``.

Importing this package loads no I/O module: the names of ``edge.store.store`` (sqlite3, sqlite-utils)
load on first use, so pure code may import ``edge.store.rows`` alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge.store.integrity import StoreDamagedError
    from edge.store.store import (
        ACTIVE_BOOKING_STATUSES,
        Store,
        StoreError,
        StoreVersionError,
        wall_clock_ms,
    )

from edge.store.rows import (
    Booking,
    ChainBlock,
    Checkpoint,
    GateEventRow,
    ListEntry,
    Lot,
    ManualActionRow,
    OutboxAction,
    OutboxRow,
    RentalEvent,
    Space,
    new_event_id,
)
from edge.store.schema import LATEST_VERSION, MIGRATIONS

_FROM_STORE = ("ACTIVE_BOOKING_STATUSES", "Store", "StoreError", "StoreVersionError", "wall_clock_ms")
_FROM_INTEGRITY = ("StoreDamagedError",)

__all__ = [
    "ACTIVE_BOOKING_STATUSES", "LATEST_VERSION", "MIGRATIONS", "Booking", "ChainBlock", "Checkpoint",
    "GateEventRow", "ListEntry", "Lot", "ManualActionRow", "OutboxAction", "OutboxRow", "RentalEvent",
    "Space", "Store", "StoreDamagedError", "StoreError", "StoreVersionError", "new_event_id", "wall_clock_ms",
]


def __getattr__(name: str) -> Any:
    if name in _FROM_STORE:
        from edge.store import store

        return getattr(store, name)
    if name in _FROM_INTEGRITY:
        from edge.store import integrity

        return getattr(integrity, name)
    raise AttributeError(f"module 'edge.store' has no attribute {name!r}")
