"""A lot's spaces, rental events and bookings as the chain holds them (read from the contract's events
and views; no database): what `parkgate lot spaces|rentals|bookings` prints and what the booking
service offers to renters.

Each row is a plain dict with JSON-ready values (addresses checksummed, commitments as 0x hex, times as
unix seconds), so the CLI's ``--json`` and the service's API print them as they are.

The events come from ``source`` (an :class:`EventSource`): the client itself by default (the CLI), or
the booking service's cache of what it already read (edge.booking.eventcache); the views always come
from the client, the rows of a listing in JSON-RPC batches (:meth:`RentalClient.read_many`: a few HTTP
requests for any number of rows, one per row from a node that refuses batches).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from edge.chain.contract import Booking, DecodedEvent, RentalClient

Row = dict[str, Any]


class EventSource(Protocol):
    """Where a lot's events are read: :meth:`RentalClient.events` or a cache with its signature."""

    def events(self, name: str, from_block: int = 0, to_block: int | str = "latest",
               lot_id: bytes | None = None) -> list[DecodedEvent]: ...


def spaces(client: RentalClient, lot: bytes, from_block: int = 0,
           source: EventSource | None = None) -> list[Row]:
    """Every space registered in ``lot`` with its current approval by the lot admin (the views read in
    batches, :meth:`RentalClient.read_many`): only approved spaces can be listed and booked."""
    registered = [e.args for e in (source or client).events("SpaceRegistered", from_block=from_block,
                                                             lot_id=lot)]
    found = client.get_spaces([args["spaceId"] for args in registered])
    return [{"space_id": args["spaceId"], "owner": args["owner"], "location": args["location"],
             "approved": space.approved} for args, space in zip(registered, found, strict=True)]


def rentals(client: RentalClient, lot: bytes, from_block: int = 0, owner: str | None = None,
            source: EventSource | None = None) -> list[Row]:
    """Every rental event of ``lot`` (of ``owner`` only, when given) with its current cancelled flag (the
    views read in batches)."""
    created = [e.args for e in (source or client).events("RentalEventCreated", from_block=from_block,
                                                          lot_id=lot)
               if owner is None or e.args["owner"] == owner]
    found = client.get_rental_events([args["rentalId"] for args in created])
    return [{"rental_id": args["rentalId"], "space_id": args["spaceId"], "owner": args["owner"],
             "start": args["start"], "end": args["end"], "price_per_hour_wei": args["pricePerHour"],
             "cancelled": rental.cancelled} for args, rental in zip(created, found, strict=True)]


def _booking_row(booking_id: int, b: Booking) -> Row:
    return {"booking_id": booking_id, "rental_id": b.rental_id, "renter": b.renter, "start": b.start,
            "end": b.end, "status": b.status.name.lower(), "check_in_at": b.check_in_at or None,
            "check_out_at": b.check_out_at or None, "escrow_wei": b.escrow,
            "vehicle_commitment": "0x" + b.vehicle_commitment.hex()}


def booking_rows(client: RentalClient, booking_ids: Sequence[int]) -> list[Row]:
    """The rows of ``booking_ids``, in their order, with their current states (the views read in
    batches)."""
    return [_booking_row(i, b) for i, b in zip(booking_ids, client.get_bookings(booking_ids), strict=True)]


def booking_row(client: RentalClient, booking_id: int) -> Row:
    return _booking_row(booking_id, client.get_booking(booking_id))


def bookings(client: RentalClient, lot: bytes, from_block: int = 0,
             source: EventSource | None = None) -> list[Row]:
    """Every booking of ``lot`` with its current state (the views read in batches)."""
    requested = (source or client).events("RentalRequested", from_block=from_block, lot_id=lot)
    return booking_rows(client, [e.args["bookingId"] for e in requested])
