"""A lot's spaces, rental events and bookings as the chain holds them (read from the contract's events
and views; no database): what `parkgate lot spaces|rentals|bookings` prints and what the booking
service offers to renters.

Each row is a plain dict with JSON-ready values (addresses checksummed, commitments as 0x hex, times as
unix seconds), so the CLI's ``--json`` and the service's API print them as they are.

The events come from ``source`` (an :class:`EventSource`): the client itself by default (the CLI), or
the booking service's cache of what it already read (edge.booking.eventcache); the views always come
from the client.
"""

from __future__ import annotations

from typing import Any, Protocol

from edge.chain.contract import DecodedEvent, RentalClient

Row = dict[str, Any]


class EventSource(Protocol):
    """Where a lot's events are read: :meth:`RentalClient.events` or a cache with its signature."""

    def events(self, name: str, from_block: int = 0, to_block: int | str = "latest",
               lot_id: bytes | None = None) -> list[DecodedEvent]: ...


def spaces(client: RentalClient, lot: bytes, from_block: int = 0,
           source: EventSource | None = None) -> list[Row]:
    """Every space registered in ``lot`` with its current approval by the lot admin (one view call per
    space): only approved spaces can be listed and booked."""
    return [{"space_id": e.args["spaceId"], "owner": e.args["owner"], "location": e.args["location"],
             "approved": client.get_space(e.args["spaceId"]).approved}
            for e in (source or client).events("SpaceRegistered", from_block=from_block, lot_id=lot)]


def rentals(client: RentalClient, lot: bytes, from_block: int = 0, owner: str | None = None,
            source: EventSource | None = None) -> list[Row]:
    """Every rental event of ``lot`` (of ``owner`` only, when given) with its current cancelled flag (one
    view call per event)."""
    rows = []
    for e in (source or client).events("RentalEventCreated", from_block=from_block, lot_id=lot):
        if owner is not None and e.args["owner"] != owner:
            continue
        rental_id = e.args["rentalId"]
        rows.append({"rental_id": rental_id, "space_id": e.args["spaceId"], "owner": e.args["owner"],
                     "start": e.args["start"], "end": e.args["end"],
                     "price_per_hour_wei": e.args["pricePerHour"],
                     "cancelled": client.get_rental_event(rental_id).cancelled})
    return rows


def booking_row(client: RentalClient, booking_id: int) -> Row:
    b = client.get_booking(booking_id)
    return {"booking_id": booking_id, "rental_id": b.rental_id, "renter": b.renter, "start": b.start,
            "end": b.end, "status": b.status.name.lower(), "check_in_at": b.check_in_at or None,
            "check_out_at": b.check_out_at or None, "escrow_wei": b.escrow,
            "vehicle_commitment": "0x" + b.vehicle_commitment.hex()}


def bookings(client: RentalClient, lot: bytes, from_block: int = 0,
             source: EventSource | None = None) -> list[Row]:
    """Every booking of ``lot`` with its current state (one view call per booking)."""
    return [booking_row(client, e.args["bookingId"])
            for e in (source or client).events("RentalRequested", from_block=from_block, lot_id=lot)]
