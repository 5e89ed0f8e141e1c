"""What the owner's and the renter's pages read, from the chain (events and views, no database), and the
pre-flight of a transaction the page is about to send through the wallet.

The pages send every transaction through the person's wallet (EIP-1193); before they do, they ask the
service to run it as an ``eth_call`` from the same account, so that a refusal is shown as the sentence
`parkgate lot` prints (edge.chain.reverts), not as the wallet's ``execution reverted``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from eth_abi.exceptions import DecodingError
from eth_typing import HexStr
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError, Web3RPCError
from web3.types import Wei

from edge.booking.requests import RequestError
from edge.chain.contract import RentalClient, decode_revert
from edge.chain.listings import EventSource, booking_rows, rentals, spaces
from edge.chain.reverts import RevertContext, explain

MAX_CALLDATA_HEX = 2 * 1024  # the longest call a page sends (settle of a few ids) is far shorter
HEX_DATA = re.compile(r"0x(?:[0-9a-fA-F]{2})*")
HEX_VALUE = re.compile(r"0x[0-9a-fA-F]{1,64}")


def chain_time(client: RentalClient) -> int:
    return int(client.w3.eth.get_block("latest")["timestamp"])


def account_of(text: str) -> str:
    """``text`` as a checksummed address; 400 naming the allowed form otherwise."""
    if not (isinstance(text, str) and len(text) == 42 and Web3.is_address(text)):
        raise RequestError(400, f"account {str(text)[:50]!r} must be 0x and 40 hex digits")
    return Web3.to_checksum_address(text)


def renter_view(client: RentalClient, lot: bytes, renter: str, from_block: int = 0,
                source: EventSource | None = None) -> dict[str, Any]:
    """The renter's bookings in ``lot`` with their states, and what the contract holds for them (events
    read from ``source``, by default the client)."""
    ids = [e.args["bookingId"]
           for e in (source or client).events("RentalRequested", from_block=from_block, lot_id=lot)
           if e.args["renter"] == renter]
    return {"chain_time": chain_time(client), "account": renter,
            "bookings": booking_rows(client, ids),
            "pending_wei": client.pending_withdrawal(renter)}


def owner_view(client: RentalClient, lot: bytes, owner: str, from_block: int = 0,
               source: EventSource | None = None) -> dict[str, Any]:
    """The owner's spaces, rental events and their bookings in ``lot``, what they earned (settled to
    them) and what they can withdraw (events read from ``source``, by default the client)."""
    events = source or client
    own_rentals = rentals(client, lot, from_block, owner, events)
    rental_ids = {r["rental_id"] for r in own_rentals}
    booked = [e.args["bookingId"] for e in events.events("RentalRequested", from_block=from_block, lot_id=lot)
              if e.args["rentalId"] in rental_ids]
    own_bookings = booking_rows(client, booked)
    booking_ids = {b["booking_id"] for b in own_bookings}
    earned = sum(e.args["toOwner"] for e in events.events("Settled", from_block=from_block, lot_id=lot)
                 if e.args["bookingId"] in booking_ids)
    return {"chain_time": chain_time(client), "account": owner,
            "verified": client.is_verified_owner(owner),
            "spaces": [s for s in spaces(client, lot, from_block, events) if s["owner"] == owner],
            "rentals": own_rentals, "bookings": own_bookings, "earned_wei": earned,
            "pending_wei": client.pending_withdrawal(owner)}


def _context(client: RentalClient, function: str, params: dict[str, Any]) -> RevertContext:
    """The chain time, and the rental event's window for a booking (a window error names the bound)."""
    now = chain_time(client)
    if function == "requestRental":
        rental = client.get_rental_event(params["rentalId"])
        if rental.end:
            return RevertContext(now, (rental.start, rental.end))
    return RevertContext(now)


@dataclass(frozen=True)
class Call:
    """A contract call a page is about to send, checked and decoded (no I/O)."""

    sender: str
    data: str
    value: int
    function: str
    params: dict[str, Any]


def parse_call(contract: Contract, body: Any) -> Call:
    """``{"from", "data", "value"}`` as a :class:`Call` of ``contract``; RequestError(400) naming the bad
    field and what is allowed."""
    if not isinstance(body, dict) or not all(isinstance(body.get(k), str) for k in ("from", "data")):
        raise RequestError(400, 'body must be JSON {"from": "0x...", "data": "0x...", "value": "0x..."}')
    sender = account_of(body["from"])
    data, value_text = body["data"], body.get("value", "0x0")
    if not isinstance(value_text, str) or not HEX_VALUE.fullmatch(value_text):
        raise RequestError(400, "value must be a 0x hex number of wei (at most 64 hex digits)")
    if len(data) > MAX_CALLDATA_HEX or not HEX_DATA.fullmatch(data):
        raise RequestError(400, f"data must be 0x and at most {MAX_CALLDATA_HEX - 2} hex digits")
    try:
        function, params = contract.decode_function_input(data)
    except (ValueError, TypeError, DecodingError):
        raise RequestError(400, "data must be the ABI encoding of a ParkgateRental function call "
                           "(see /api/abi)") from None
    return Call(sender, data, int(value_text, 16), function.fn_name, params)


def preflight(client: RentalClient, body: Any) -> dict[str, Any]:
    """Run ``{"from", "data", "value"}`` as an eth_call to the contract; ``{"ok": true, "function": ...}``
    when it would pass, RequestError(422, sentence) when the contract would refuse it."""
    call = parse_call(client.contract, body)
    try:
        client.w3.eth.call({"from": call.sender, "to": client.address, "data": HexStr(call.data),
                            "value": Wei(call.value)})
    except ContractLogicError as exc:
        revert = decode_revert(client.abi, exc.data if isinstance(exc.data, str | bytes) else None)
        raise RequestError(422, explain(revert, _context(client, call.function, call.params))) from None
    except Web3RPCError as exc:  # e.g. the account holds less ether than the value: the node says so
        message = exc.rpc_response.get("error", {}).get("message") if exc.rpc_response else None
        raise RequestError(422, f"the chain node refused the call from {call.sender}: "
                           f"{' '.join(str(message or exc).split())[:200]}") from None
    return {"ok": True, "function": call.function}
