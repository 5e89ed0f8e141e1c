"""Conversions between the store's cached rows and the access decision's views (pure)."""

from __future__ import annotations

from collections.abc import Iterable

from edge.access.types import BookingStatus, BookingView
from edge.store.rows import Booking


def booking_view(row: Booking) -> BookingView:
    """The part of a cached booking the decision needs (status strings are shared with the store)."""
    return BookingView(row.booking_id, row.lot_id, row.vehicle_commitment, row.window_start_ms,
                       row.window_end_ms, BookingStatus(row.status), row.space_id)


def booking_views(rows: Iterable[Booking]) -> list[BookingView]:
    return [booking_view(r) for r in rows]
