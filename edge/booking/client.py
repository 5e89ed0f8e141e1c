"""The renter's side of a commitment request, for scripts, the demo and the tests (a renter's web page
does the same with its wallet: sign the text of :func:`request_message`, post it).

The private key stays with the caller's ``LocalAccount``: only the signature travels.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.request
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from edge.booking.requests import request_message


class CommitmentRefused(Exception):
    """The booking service refused; ``status`` is the HTTP status, the message its sentence."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"booking service refused ({status}): {message}")
        self.status = status


def signed_body(account: LocalAccount, message: str) -> dict[str, str]:
    """The JSON body of POST /api/commitment for ``message`` signed (EIP-191) by ``account``."""
    signature = Account.sign_message(encode_defunct(text=message), account.key).signature
    return {"account": account.address, "message": message, "signature": "0x" + bytes(signature).hex()}


def new_request(account: LocalAccount, lot: str, contract: str, chain_id: int, plate: str,
                window: tuple[int, int, int] | None = None, expires_in_s: int = 300) -> dict[str, str]:
    """A fresh signed request (random nonce, expiring in ``expires_in_s``); ``window`` is
    (rental id, start, end) when the service should check the booking's window too."""
    rental, start, end = window if window else (None, None, None)
    message = request_message(lot, contract, chain_id, plate, secrets.token_hex(16),
                              int(time.time()) + expires_in_s, rental, start, end)
    return signed_body(account, message)


def post_json(url: str, body: Any, timeout_s: float = 30.0) -> tuple[int, Any]:
    """POST ``body`` (JSON, or raw bytes) and return (status, parsed JSON answer), errors included."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def request_commitment(base_url: str, account: LocalAccount, lot: str, contract: str, chain_id: int,
                       plate: str, window: tuple[int, int, int] | None = None) -> dict[str, Any]:
    """Ask the service at ``base_url`` for the commitment of ``plate``; CommitmentRefused on refusal."""
    status, answer = post_json(base_url.rstrip("/") + "/api/commitment",
                               new_request(account, lot, contract, chain_id, plate, window))
    if status != 200:
        raise CommitmentRefused(status, str(answer.get("error") if isinstance(answer, dict) else answer))
    return answer
