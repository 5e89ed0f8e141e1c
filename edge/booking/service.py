"""The booking service: an HTTP API (Starlette, served by uvicorn) run by the lot operator, never on a
gateway's lane path. It holds the lot secret and answers a renter's signed request with the vehicle
commitment of their plate; it reads the lot's rental events and bookings from the chain.

State is only caches (the rental list for ``rentals_ttl_s``, the lot's confirmed contract events read so
far (edge.booking.eventcache), the nonces seen until they expire, the rate-limit buckets), so several
instances can run behind a load balancer. Limits are per instance: behind N instances a client gets up
to N times the limit unless the balancer keeps it on one.

    GET  /api/lot              the lot, contract, chain, plate layouts and the message to sign
    GET  /api/rentals          the lot's open rental events (price, window)
    GET  /api/bookings/{id}    a booking's state (requested, checked_in, checked_out, settled, ...)
    POST /api/commitment       {"account", "message": <signed text>, "signature"} -> the commitment
                               (POSTs need Content-Type: application/json, else 415, nothing charged)
    GET  /api/renters/{0x..}   a renter's bookings in this lot with their states, and their credit
    GET  /api/owners/{0x..}    an owner's spaces, rental events, bookings, earnings and credit
    GET  /api/abi              the contract's ABI (the pages encode their calls with it)
    POST /api/preflight        {"from", "data", "value"}: a call the page is about to send through the
                               wallet, run as eth_call; a refusal comes back as a sentence
    GET  /healthz
    GET  /  and  /owner        the renter's and the owner's pages (edge.booking.pages)
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from edge.booking.eventcache import EventCache
from edge.booking.pages import SecurityHeaders, page_routes
from edge.booking.requests import (
    HEADER,
    MAX_EXPIRY_S,
    MAX_MESSAGE_CHARS,
    CommitmentRequest,
    RequestError,
    check_binding,
    parse_request,
)
from edge.booking.views import account_of, owner_view, preflight, renter_view
from edge.chain.blocks import DEFAULT_CONFIRMATIONS
from edge.chain.contract import ContractRevert, RentalClient
from edge.chain.listings import booking_row, rentals, spaces
from edge.chain.reverts import explain
from edge.chain.windows import booking_window_problem
from edge.identity import lot_id, plate_commitment
from edge.throttle import Throttle, allow_all

LOG = logging.getLogger(__name__)
MAX_BODY_BYTES = 4096
MAX_NONCES = 100_000


NETWORK_FACTOR = 4  # an IPv6 /48 or an IPv4 /24 gets this many times the per-address budget
WIDE_NETWORK_FACTOR = 16  # an IPv6 /32


@dataclass(frozen=True)
class Limits:
    """Commitment requests allowed per hour (and at once) per renter account and per client address
    (an IPv6 client counts by its /64, which one host usually holds whole), per network (an IPv6 /48 or
    an IPv4 /24: ``NETWORK_FACTOR`` times the per-address budget; an IPv6 /32: ``WIDE_NETWORK_FACTOR``
    times), and in all for this instance: one holder of many addresses (a tunnel broker's free /48 is
    65,536 /64s) gets no more than its network's budget, and no number of networks more than the
    instance's."""

    per_account_per_hour: int = 10
    per_address_per_hour: int = 30
    max_keys: int = 10_000
    per_instance_per_hour: int = 1000
    # Chain reads (rentals, a booking's state: a renter's page polls it) per client address, a burst
    # of 60: the service must not turn one client into a flood of RPC calls.
    reads_per_address_per_hour: int = 3600


@dataclass
class BookingService:
    """The service's logic over injected I/O: the chain client and the clock."""

    client: RentalClient
    lot: str
    lot_secret: bytes
    layouts: Sequence[str]
    limits: Limits = field(default_factory=Limits)
    clock: Callable[[], float] = time.time
    rentals_ttl_s: float = 5.0
    from_block: int = 0
    confirmations: int = DEFAULT_CONFIRMATIONS  # blocks on top before a read event is cached

    def __post_init__(self) -> None:
        if not self.layouts:
            raise ValueError("the booking service needs the lot's plate layouts (a region such as de); a "
                             "region without layouts (any, us) would make it a plate-guessing oracle")
        self.chain_id = int(self.client.w3.eth.chain_id)
        self.lot_bytes = lot_id(self.lot)
        hours = 3600.0
        self.by_account = Throttle(self.limits.per_account_per_hour / hours, self.limits.per_account_per_hour,
                                   self.limits.max_keys, time.monotonic)
        per_address = self.limits.per_address_per_hour
        self.by_address = Throttle(per_address / hours, per_address, self.limits.max_keys, time.monotonic)
        self.by_network = Throttle(NETWORK_FACTOR * per_address / hours, NETWORK_FACTOR * per_address,
                                   self.limits.max_keys, time.monotonic)
        self.by_wide_network = Throttle(WIDE_NETWORK_FACTOR * per_address / hours, WIDE_NETWORK_FACTOR
                                        * per_address, self.limits.max_keys, time.monotonic)
        per_instance = self.limits.per_instance_per_hour
        self.by_instance = Throttle(per_instance / hours, per_instance, 1, time.monotonic)
        self._instance_warnings = Throttle(1 / 60, 1, 1, time.monotonic)  # one log line a minute
        self.reads = Throttle(self.limits.reads_per_address_per_hour / hours, 60, self.limits.max_keys,
                              time.monotonic)
        self._nonces: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._lock = threading.Lock()  # requests run in the server's thread pool
        self._rentals: tuple[float, list[dict[str, Any]]] | None = None
        self.event_cache = EventCache(self.client, self.confirmations)  # each confirmed block read once

    # ------------------------------------------------------------------ commitment

    def commitment(self, body: Any, client_address: str) -> dict[str, Any]:
        """The answer to POST /api/commitment; RequestError for every refusal."""
        self._allow_address(client_address)
        if not isinstance(body, dict) or not all(isinstance(body.get(k), str)
                                                 for k in ("account", "message", "signature")):
            raise RequestError(400, 'body must be JSON {"account": "0x...", "message": <the signed text>, '
                               '"signature": "0x..."}')
        claimed = claimed_account(body["account"])
        account = recover(body["message"], body["signature"])
        if account != claimed:
            raise RequestError(401, f"the signature is not {claimed}'s signature of this message: sign the "
                               "exact message text with that account")
        if not self._allow(self.by_account, account):
            raise RequestError(429, f"too many commitment requests for account {account}: at most "
                               f"{self.limits.per_account_per_hour} per hour; try again later")
        req = parse_request(body["message"], self.layouts)
        now = self.clock()
        check_binding(req, self.lot, self.client.address, self.chain_id, now)
        self._use_nonce(account, req, now)
        answer: dict[str, Any] = {"account": account, "lot": self.lot,
                                  "commitment": "0x" + plate_commitment(self.lot_secret, self.lot,
                                                                        req.plate).hex()}
        if req.rental is not None:
            answer["quote_wei"] = self._check_window(req)
        return answer

    def allow_read(self, client_address: str) -> None:
        if not self._allow(self.reads, address_key(client_address)):
            raise RequestError(429, "too many requests from this address: at most "
                               f"{self.limits.reads_per_address_per_hour} per hour; try again later")

    def _allow_address(self, client_address: str) -> None:
        """Charge one commitment request to the client's address, its networks and this instance, all or
        none; 429 naming the budget that is spent."""
        keys = address_keys(client_address)
        networks = (self.by_network, self.by_wide_network)[:len(keys) - 1]
        levels = [(self.by_address, keys[0]), *zip(networks, keys[1:], strict=True),
                  (self.by_instance, "instance")]
        with self._lock:
            spent = allow_all(levels)
            warn = spent == len(levels) - 1 and self._instance_warnings.allow("instance")
        if spent is None:
            return
        throttle, key = levels[spent]
        per_hour = int(throttle.burst)
        if throttle is self.by_instance:
            if warn:
                LOG.warning("ALERT booking service: the instance-wide limit of %d commitment requests per "
                            "hour is spent: every client is refused until it refills (a flood from many "
                            "networks, or raise --per-instance-per-hour)", per_hour)
            raise RequestError(429, f"this service is answering too many commitment requests: at most "
                               f"{per_hour} per hour in all; try again later")
        if throttle is self.by_address:
            raise RequestError(429, f"too many commitment requests from this address: at most "
                               f"{per_hour} per hour; try again later")
        raise RequestError(429, f"too many commitment requests from this network ({key}): at most "
                           f"{per_hour} per hour; try again later")

    def _allow(self, throttle: Throttle, key: str) -> bool:
        with self._lock:
            return throttle.allow(key)

    def _use_nonce(self, account: str, req: CommitmentRequest, now: float) -> None:
        with self._lock:
            self._take_nonce(account, req, now)

    def _take_nonce(self, account: str, req: CommitmentRequest, now: float) -> None:
        """A signed request is answered once per instance (replaying it elsewhere gives the same
        commitment again, nothing new)."""
        while self._nonces and (next(iter(self._nonces.values())) < now or len(self._nonces) >= MAX_NONCES):
            self._nonces.popitem(last=False)
        key = (account, req.nonce)
        if key in self._nonces:
            raise RequestError(409, "this signed request was already answered: sign a new one with a "
                               "new nonce")
        self._nonces[key] = req.expires

    def _check_window(self, req: CommitmentRequest) -> int:
        """The escrow of the requested booking; a window the contract would refuse is refused here in
        words (a booking in the past, outside the rental event, too short)."""
        assert req.rental is not None and req.start is not None and req.end is not None
        try:
            rental = self.client.get_rental_event(req.rental)
        except ContractRevert as exc:
            raise RequestError(422, explain(exc)) from None
        if rental.end == 0 or rental.lot_id != self.lot_bytes:
            raise RequestError(422, f"rental event {req.rental} is not one of lot {self.lot}: see "
                               "/api/rentals")
        if rental.cancelled:
            raise RequestError(422, f"rental event {req.rental} is cancelled: choose another one")
        if not self.client.get_space(rental.space_id).approved:
            raise RequestError(422, f"rental event {req.rental} is of a space the lot no longer approves: "
                               "choose another one")
        now = int(self.client.w3.eth.get_block("latest")["timestamp"])
        problem = booking_window_problem(req.start, req.end, now, rental.start, rental.end)
        if problem:
            raise RequestError(422, problem)
        return self.client.quote(req.rental, req.start, req.end)

    # ------------------------------------------------------------------ chain views

    def open_rentals(self) -> list[dict[str, Any]]:
        """The lot's rental events not cancelled and not over, of spaces the lot approves, with their
        space's location (cached for ``rentals_ttl_s``)."""
        at = time.monotonic()
        if self._rentals is None or at - self._rentals[0] > self.rentals_ttl_s:
            lot, first = self.lot_bytes, self.from_block
            located = {s["space_id"]: s["location"]
                       for s in spaces(self.client, lot, first, self.event_cache) if s["approved"]}
            self._rentals = (at, [{**r, "location": located[r["space_id"]]}
                                  for r in rentals(self.client, lot, first, source=self.event_cache)
                                  if r["space_id"] in located])
        now = int(self.client.w3.eth.get_block("latest")["timestamp"])
        return [r for r in self._rentals[1] if not r["cancelled"] and r["end"] > now]

    def booking(self, booking_id: int) -> dict[str, Any]:
        row = booking_row(self.client, booking_id)
        if row["status"] == "none":
            raise RequestError(404, f"booking {booking_id} does not exist")
        if self.client.get_rental_event(row["rental_id"]).lot_id != self.lot_bytes:
            raise RequestError(404, f"booking {booking_id} is not one of lot {self.lot}")
        return row

    def renter(self, account: str) -> dict[str, Any]:
        return renter_view(self.client, self.lot_bytes, account_of(account), self.from_block,
                           self.event_cache)

    def owner(self, account: str) -> dict[str, Any]:
        return owner_view(self.client, self.lot_bytes, account_of(account), self.from_block,
                          self.event_cache)

    def preflight(self, body: Any) -> dict[str, Any]:
        return preflight(self.client, body)

    def describe(self) -> dict[str, Any]:
        return {"lot": self.lot, "lot_id": "0x" + self.lot_bytes.hex(), "contract": self.client.address,
                "chain_id": self.chain_id,
                "plate_layouts": list(self.layouts), "message_header": HEADER,
                "max_expiry_s": MAX_EXPIRY_S, "max_message_chars": MAX_MESSAGE_CHARS,
                "service_time": int(self.clock()),
                "limits": {"per_account_per_hour": self.limits.per_account_per_hour,
                           "per_address_per_hour": self.limits.per_address_per_hour,
                           "per_network_per_hour": NETWORK_FACTOR * self.limits.per_address_per_hour,
                           "per_instance_per_hour": self.limits.per_instance_per_hour}}


def claimed_account(text: str) -> str:
    """The account a commitment request claims, checksummed, in any letter case (the signature decides
    whose it is); 400 naming it, escaped, unless it is 0x and 40 hex digits: raw input never goes into
    an answer (a lone surrogate could not even be encoded)."""
    return account_of(text.lower() if len(text) == 42 else text)


def recover(message: str, signature: str) -> str:
    """The account that signed ``message`` (EIP-191 personal_sign); 401 when the signature is not one."""
    try:
        return Account.recover_message(encode_defunct(text=message), signature=signature)
    except Exception:  # noqa: BLE001 - any malformed signature (length, hex, v, s out of range)
        raise RequestError(401, "signature is not a valid EIP-191 (personal_sign) signature of the "
                           "message: sign the exact message text with your account") from None


def address_keys(host: str) -> list[str]:
    """The rate-limit keys of a client address, narrowest first: an IPv6 address's /64, /48 and /32; an
    IPv4 address (an IPv4-mapped IPv6 one too) and its /24; anything else (no address) itself alone."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return [host]
    if ip.version == 6 and not ip.ipv4_mapped:
        return [str(ipaddress.ip_network(f"{ip}/{bits}", strict=False)) for bits in (64, 48, 32)]
    v4 = ip.ipv4_mapped if ip.version == 6 else ip
    return [str(v4), str(ipaddress.ip_network(f"{v4}/24", strict=False))]


def address_key(host: str) -> str:
    """The rate-limit key of a client address: the address itself, an IPv6 address's /64."""
    return address_keys(host)[0]


# ---------------------------------------------------------------------- HTTP


async def _read_json(request: Request, shape: str = '{"account": ..., "message": ..., "signature": ...}'
                     ) -> Any:
    import json

    size = 0
    chunks = []
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise RequestError(413, f"request body is larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except ValueError:
        raise RequestError(400, f"body must be JSON {shape}") from None


def _require_json(request: Request) -> None:
    """415 unless the request says its body is JSON. A cross-site page can POST text/plain (or a form)
    without a CORS preflight, so that any website a renter visits could otherwise spend the renter's
    address budget; application/json needs the preflight, which this service never grants. Checked
    before anything is charged."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        raise RequestError(415, f"Content-Type must be application/json (got {media[:60] or 'none'!r}): "
                           "send the body as JSON with that header")


def create_app(service: BookingService) -> Starlette:
    def refused(exc: RequestError) -> JSONResponse:
        headers = {"Retry-After": "60"} if exc.status == 429 else None
        return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=headers)

    async def handle(call: Callable[[], Any]) -> JSONResponse:
        try:
            return JSONResponse(await run_in_threadpool(call))
        except RequestError as exc:
            return refused(exc)
        except Exception as exc:  # noqa: BLE001 - the chain node failed: say so, keep serving
            LOG.warning("chain read failed: %s: %s", type(exc).__name__, str(exc)[:200])
            return JSONResponse({"error": f"the chain node did not answer ({type(exc).__name__}); "
                                 "try again"}, status_code=503)

    async def commitment(request: Request) -> JSONResponse:
        try:
            _require_json(request)
            body = await _read_json(request)
        except RequestError as exc:
            return refused(exc)
        host = request.client.host if request.client else "unknown"
        return await handle(lambda: service.commitment(body, host))

    async def lot(request: Request) -> JSONResponse:
        return JSONResponse(service.describe())

    def read(request: Request) -> None:
        service.allow_read(request.client.host if request.client else "unknown")

    async def open_rentals(request: Request) -> JSONResponse:
        try:
            read(request)
        except RequestError as exc:
            return refused(exc)
        return await handle(service.open_rentals)

    async def booking(request: Request) -> JSONResponse:
        try:
            read(request)
        except RequestError as exc:
            return refused(exc)
        text = request.path_params["booking_id"]
        if not (text.isascii() and text.isdigit()) or len(text) > 19:
            return refused(RequestError(400, f"booking id {text[:40]!r} must be a whole number"))
        return await handle(lambda: service.booking(int(text)))

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    def account_read(view: Callable[[str], dict[str, Any]]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> JSONResponse:
            try:
                read(request)
            except RequestError as exc:
                return refused(exc)
            return await handle(lambda: view(request.path_params["account"]))

        return endpoint

    async def abi(request: Request) -> JSONResponse:
        return JSONResponse({"abi": service.client.abi}, headers={"Cache-Control": "max-age=300"})

    async def preflight_call(request: Request) -> JSONResponse:
        try:
            _require_json(request)
            read(request)
            body = await _read_json(request, '{"from": "0x...", "data": "0x...", "value": "0x..."}')
        except RequestError as exc:
            return refused(exc)
        return await handle(lambda: service.preflight(body))

    app = Starlette(routes=[
        Route("/api/lot", lot), Route("/api/rentals", open_rentals),
        Route("/api/bookings/{booking_id}", booking), Route("/api/commitment", commitment, methods=["POST"]),
        Route("/api/renters/{account}", account_read(service.renter)),
        Route("/api/owners/{account}", account_read(service.owner)),
        Route("/api/abi", abi), Route("/api/preflight", preflight_call, methods=["POST"]),
        Route("/healthz", healthz), *page_routes(),
    ])
    app.add_middleware(SecurityHeaders)
    return app
