"""Durable local state of the gateway (SQLite, WAL, synchronous=FULL).

Use::

    from edge.store import Store, GateEvent, new_event_id
    with Store(path) as store:
        store.record_gate_event(GateEvent(...), destinations=("chain", "mqtt"))

Schema and how to append a migration: ``edge.store.schema``. Threading and durability rules:
``edge.store.store``. Rows: ``edge.store.rows``.
"""

from edge.store.rows import (
    Booking,
    ChainBlock,
    Checkpoint,
    GateEvent,
    Lot,
    OutboxRow,
    RentalEvent,
    Space,
    new_event_id,
)
from edge.store.schema import LATEST_VERSION, MIGRATIONS
from edge.store.store import ACTIVE_BOOKING_STATUSES, Store, StoreError, StoreVersionError, wall_clock_ms

__all__ = [
    "ACTIVE_BOOKING_STATUSES", "LATEST_VERSION", "MIGRATIONS", "Booking", "ChainBlock", "Checkpoint",
    "GateEvent", "Lot", "OutboxRow", "RentalEvent", "Space", "Store", "StoreError", "StoreVersionError",
    "new_event_id", "wall_clock_ms",
]
