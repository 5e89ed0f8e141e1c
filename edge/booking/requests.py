"""The renter's signed commitment request (pure functions, no I/O).

A renter asks the booking service for the vehicle commitment of the plate they typed by signing this
text with their account (EIP-191 ``personal_sign``; a browser wallet shows it as it is)::

    parkgate vehicle commitment request
    lot: LOT-NORD-1
    contract: 0x5FbDB2315678afecb367f032d93F642f64180aa3
    chain id: 31337
    plate: B-AB 1234
    rental: 3                       (optional, with start and end: the service checks the window)
    start: 1764615600
    end: 1764622800
    nonce: 5f0c1e9a2b7d4c38
    expires: 1764615900

The lot, contract and chain bind the signature to one lot (another lot's service refuses it), the
plate binds it to one plate (a signature is no licence to ask for others), the nonce and the expiry
(at most ``MAX_EXPIRY_S`` ahead) bound its replay. Errors are ``RequestError`` with the HTTP status
and a sentence naming the bad field and what is allowed; they never repeat the plate.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from edge.identity import normalise_plate
from edge.vision.plates import matches_any

HEADER = "parkgate vehicle commitment request"
MAX_MESSAGE_CHARS = 1024
MAX_EXPIRY_S = 600
_REQUIRED = ("lot", "contract", "chain id", "plate", "nonce", "expires")
_OPTIONAL = ("rental", "start", "end")
_NONCE = re.compile(r"[0-9a-f]{16,64}")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


class RequestError(Exception):
    """A refused request: ``status`` is the HTTP status, the message says what to change."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class CommitmentRequest:
    lot: str
    contract: str
    chain_id: int
    plate: str  # normalised
    nonce: str
    expires: int
    rental: int | None = None
    start: int | None = None
    end: int | None = None


def request_message(lot: str, contract: str, chain_id: int, plate: str, nonce: str, expires: int,
                    rental: int | None = None, start: int | None = None, end: int | None = None) -> str:
    """The text a renter signs (the inverse of :func:`parse_request`)."""
    lines = [HEADER, f"lot: {lot}", f"contract: {contract}", f"chain id: {chain_id}", f"plate: {plate}"]
    if rental is not None:
        lines += [f"rental: {rental}", f"start: {start}", f"end: {end}"]
    return "\n".join([*lines, f"nonce: {nonce}", f"expires: {expires}"])


def _fields(message: str) -> dict[str, str]:
    if not isinstance(message, str) or len(message) > MAX_MESSAGE_CHARS:
        raise RequestError(400, f"message must be text of at most {MAX_MESSAGE_CHARS} characters")
    lines = message.replace("\r\n", "\n").split("\n")
    if lines[0] != HEADER:
        raise RequestError(400, f"message must start with the line {HEADER!r}")
    fields: dict[str, str] = {}
    for number, line in enumerate(lines[1:], start=2):
        key, sep, value = line.partition(": ")
        if not sep or key not in _REQUIRED + _OPTIONAL or key in fields:
            raise RequestError(400, f"message line {number} is not 'key: value' with a new key out of "
                               f"{', '.join(_REQUIRED + _OPTIONAL)}")
        fields[key] = value.strip()
    missing = [k for k in _REQUIRED if k not in fields]
    window = [k for k in _OPTIONAL if k in fields]
    if missing:
        raise RequestError(400, f"message lacks {', '.join(missing)}")
    if window and len(window) != len(_OPTIONAL):
        raise RequestError(400, "message must give rental, start and end together, or none of them")
    return fields


def _int(fields: dict[str, str], key: str) -> int:
    value = fields[key]
    if not (value.isascii() and value.isdigit()) or len(value) > 20:
        raise RequestError(400, f"message field {key!r} must be a whole number")
    return int(value)


def parse_request(message: str, layouts: Sequence[str]) -> CommitmentRequest:
    """Parse and check the signed text; the plate must fit one of the lot's ``layouts``."""
    fields = _fields(message)
    if not _ADDRESS.fullmatch(fields["contract"]):
        raise RequestError(400, "message field 'contract' must be 0x and 40 hex digits")
    if not _NONCE.fullmatch(fields["nonce"]):
        raise RequestError(400, "message field 'nonce' must be 16-64 lower-case hex digits (random)")
    try:
        plate = normalise_plate(fields["plate"])
    except ValueError as exc:
        raise RequestError(422, f"plate: {exc}") from None
    if not matches_any(plate, layouts):
        raise RequestError(422, f"the plate ({len(plate)} characters) fits none of this lot's plate layouts; "
                           f"allowed (A letter, 9 digit, * either): {', '.join(layouts)}")
    window = {k: _int(fields, k) for k in _OPTIONAL if k in fields}
    return CommitmentRequest(lot=fields["lot"], contract=fields["contract"],
                             chain_id=_int(fields, "chain id"), plate=plate, nonce=fields["nonce"],
                             expires=_int(fields, "expires"), **window)


def check_binding(req: CommitmentRequest, lot: str, contract: str, chain_id: int, now: float) -> None:
    """The request names this service's lot, contract and chain, and has not expired."""
    if (req.lot, req.contract.lower(), req.chain_id) != (lot, contract.lower(), chain_id):
        raise RequestError(400, f"the request is for lot {req.lot} on contract {req.contract} (chain "
                           f"{req.chain_id}); this service serves lot {lot} on {contract} (chain {chain_id})")
    if req.expires < now:
        raise RequestError(400, f"the request expired at {req.expires} (now {int(now)}): sign a new one")
    if req.expires > now + MAX_EXPIRY_S:
        raise RequestError(400, f"the request expires at {req.expires}, more than {MAX_EXPIRY_S} s from "
                           f"now ({int(now)}): sign one that expires sooner")
