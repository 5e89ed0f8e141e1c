"""`parkgate lot ...`: the lot operator's (and owner's, and renter's) steps on the rental contract.

    parkgate lot deploy                                          the contract (the sender is its admin)
    parkgate lot register --lot CODE --geohash G                 a lot
    parkgate lot gateway add|remove --lot CODE --address A [--fund ETH]
    parkgate lot owner verify --address A --attestation 0x..     (a verifier) | revoke --address A
    parkgate lot space add --lot CODE --location L               (a verified owner's keystore)
    parkgate lot space approve|remove --space N                  (a lot admin, once the bay is the owner's)
    parkgate lot rental add --space N --start T --end T --price-per-hour-wei W   (the owner's)
    parkgate lot rental cancel --rental N                         (the owner's, or a verifier's)
    parkgate lot book --rental N --start T --end T --commitment 0x..            (a renter's)
    parkgate lot spaces|rentals|bookings --lot CODE              what the chain holds, with states
                 [--from-block N] [--log-window-blocks 2000]     (eth_getLogs in windows of N blocks)
    parkgate lot expire --booking N | settle --booking N.. [--overdue] | withdraw | credit --address A

Common options: --rpc URL, --contract ADDRESS, --json; writes sign with --keystore FILE and
--password-file FILE (a key is never taken on the command line). A refused call prints one sentence
naming what to change (edge.chain.reverts), not the Solidity error. A number out of range (an id, a
price, a time, a block, an amount of ether) is refused by the parser, naming the option and the range,
before anything is sent.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.chain.blocks import DEFAULT_LOG_WINDOW_BLOCKS  # a plain module: the parser stays light

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from eth_typing import ChecksumAddress

    from edge.chain.contract import RentalClient

DEFAULT_RPC = "http://127.0.0.1:8545"
UINT64_MAX = 2**64 - 1
UINT96_MAX = 2**96 - 1  # ParkgateRental: prices and escrows are stored as uint96 (ValueTooLarge above)
UINT256_MAX = 2**256 - 1
MAX_FUND_ETHER = 10**9


class LotError(Exception):
    """A problem with the command's input or environment; the message says what to change."""


# ---------------------------------------------------------------------------------------------- parser


def _bound(value: int) -> str:
    """``2**64 - 1`` rather than twenty digits."""
    for bits in (64, 96, 256):
        if value == 2**bits - 1:
            return f"2**{bits} - 1"
    return str(value)


def int_in(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number in ``[low, high]``; argparse names the option in the error."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip(), 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number (allowed: {low} to "
                                             f"{_bound(high)})") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range (allowed: {low} to {_bound(high)})")
        return value

    return parse


ID = int_in(1, UINT256_MAX)  # space, rental event and booking ids: uint256, numbered from 1


def chain_time(text: str) -> int:
    """An argparse type: unix seconds or ISO 8601 (edge.chain.windows.parse_chain_time), within the contract's
    uint64 times."""
    from edge.chain.windows import parse_chain_time

    try:
        value = parse_chain_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not 0 <= value <= UINT64_MAX:
        raise argparse.ArgumentTypeError(f"time {text!r} is out of range (allowed: unix seconds, 0 to "
                                         "2**64 - 1)")
    return value


def _wei(text: str) -> int:
    """An argparse type: an amount of ether (``0.05``) in wei; at least 1 wei, at most 10**9 ether."""
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of ether (e.g. 0.05)") from None
    if not amount.is_finite() or amount <= 0 or amount > MAX_FUND_ETHER:
        raise argparse.ArgumentTypeError(f"{text} ether is out of range (allowed: 1 wei = 1e-18 to "
                                         f"{MAX_FUND_ETHER} ether)")
    from eth_utils import to_wei  # web3's; imported here: the parser stays light

    wei = to_wei(amount, "ether")
    if wei < 1:
        raise argparse.ArgumentTypeError(f"{text} ether is less than 1 wei (1e-18 ether), the smallest "
                                         "amount that can be sent")
    return wei


def bytes32_hex(text: str) -> bytes:
    """An argparse type: 0x + 64 hex digits, not all zero."""
    digits = text.strip().lower().removeprefix("0x")
    if len(digits) != 64 or any(c not in "0123456789abcdef" for c in digits):
        raise argparse.ArgumentTypeError(f"{text!r} is not 0x + 64 hex digits")
    if not int(digits, 16):
        raise argparse.ArgumentTypeError("0x00...00 is not a hash: give the hash of your evidence")
    return bytes.fromhex(digits)


def _common(p: argparse.ArgumentParser, write: bool = True, contract: bool = True) -> None:
    p.add_argument("--rpc", default=DEFAULT_RPC,
                   help=f"JSON-RPC URL of the chain node (default {DEFAULT_RPC})")
    if contract:
        p.add_argument("--contract", required=True, help="address of the deployed ParkgateRental")
    if write:
        p.add_argument("--keystore", type=Path, required=True, help="encrypted JSON keystore of the sender")
        p.add_argument("--password-file", type=Path, required=True, help="file holding its password")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _add(sub: argparse._SubParsersAction, name: str, func: Callable[[Session], Any], help_: str,
         write: bool = True, contract: bool = True) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_, description=help_)
    _common(p, write, contract)
    p.set_defaults(func=lambda args: _run(func, args))
    return p


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lot", help="operate a lot on the rental contract: deploy, lots, gateways, owners, "
                       "spaces, rental events, bookings, settlement", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    lot_sub = p.add_subparsers(dest="lot_command", metavar="ACTION", required=True)

    d = _add(lot_sub, "deploy", cmd_deploy, "deploy ParkgateRental; the sender (or --admin) holds all roles",
             contract=False)
    d.add_argument("--admin", default=None, help="admin address (default: the sender)")

    r = _add(lot_sub, "register", cmd_register, "register a lot (lot admin)")
    r.add_argument("--lot", required=True, help="lot code, e.g. LOT-NORD-1")
    r.add_argument("--geohash", required=True, help="the lot's location as a geohash (public)")

    gw = lot_sub.add_parser("gateway", help="authorise, remove or fund a lot's gateway account")
    gw_sub = gw.add_subparsers(dest="gateway_command", metavar="ACTION", required=True)
    for name, func, help_ in (("add", cmd_gateway_add, "authorise a gateway account on a lot (lot admin)"),
                              ("remove", cmd_gateway_remove, "withdraw a gateway's authorisation"),
                              ("fund", cmd_gateway_fund, "send ether for gas to a gateway account")):
        g = _add(gw_sub, name, func, help_)
        g.add_argument("--address", required=True, help="the gateway's address (parkgate chain keystore "
                       "show-address on the gateway)")
        if name != "fund":
            g.add_argument("--lot", required=True, help="lot code")
        if name != "remove":
            g.add_argument("--fund", type=_wei, default=None if name == "add" else "0.05",
                           metavar="ETHER", required=False,
                           help="ether to send for the gateway's gas (e.g. 0.05; at least 1 wei = 1e-18)")

    ow = lot_sub.add_parser("owner", help="verify or revoke a space owner (verifier)")
    ow_sub = ow.add_subparsers(dest="owner_command", metavar="ACTION", required=True)
    v = _add(ow_sub, "verify", cmd_owner_verify,
             "attest an owner (the attestation is a hash of your evidence)")
    v.add_argument("--address", required=True)
    v.add_argument("--attestation", type=bytes32_hex, required=True,
                   help="0x + 64 hex digits: hash of the off-chain evidence (no personal data), e.g. "
                   "0x$(sha256sum evidence.pdf | cut -c1-64)")
    rv = _add(ow_sub, "revoke", cmd_owner_revoke, "revoke an owner's verification")
    rv.add_argument("--address", required=True)

    sp = lot_sub.add_parser("space", help="register a space (a verified owner); approve or remove it (a lot "
                            "admin): only approved spaces are listed and booked")
    sp_sub = sp.add_subparsers(dest="space_command", metavar="ACTION", required=True)
    sa = _add(sp_sub, "add", cmd_space_add, "register a space of the sender in a lot (listable once a lot "
              "admin approves it)")
    sa.add_argument("--lot", required=True)
    sa.add_argument("--location", required=True, help="level/bay inside the lot, e.g. L-1/B17 (public)")
    sap = _add(sp_sub, "approve", cmd_space_approve, "approve a registered space once the bay is shown to be "
               "its owner's (a lot admin)")
    sap.add_argument("--space", type=ID, required=True)
    srm = _add(sp_sub, "remove", cmd_space_remove, "withdraw a space's approval at once and free its "
               "location (a lot admin); its listings take no new bookings, bookings made stand, and the "
               "location is freed once its listings have ended: run it again then")
    srm.add_argument("--space", type=ID, required=True)

    rt = lot_sub.add_parser("rental", help="list a space for rent (the space's owner) or cancel a listing")
    rt_sub = rt.add_subparsers(dest="rental_command", metavar="ACTION", required=True)
    ra = _add(rt_sub, "add", cmd_rental_add, "offer a space for [start, end) at a price per hour")
    ra.add_argument("--space", type=ID, required=True)
    ra.add_argument("--start", type=chain_time, required=True,
                    help="unix seconds or ISO 8601 (UTC when no zone)")
    ra.add_argument("--end", type=chain_time, required=True)
    ra.add_argument("--price-per-hour-wei", type=int_in(1, UINT96_MAX), required=True)
    rc = _add(rt_sub, "cancel", cmd_rental_cancel, "withdraw a listing (its owner, or a verifier, e.g. for a "
              "revoked owner); bookings not yet past their cancel cutoff are refunded")
    rc.add_argument("--rental", type=ID, required=True)

    b = _add(lot_sub, "book", cmd_book, "book [start, end) of a rental event with a vehicle commitment "
             "from the lot's booking service, paying the quoted escrow")
    b.add_argument("--rental", type=ID, required=True)
    b.add_argument("--start", type=chain_time, required=True)
    b.add_argument("--end", type=chain_time, required=True)
    b.add_argument("--commitment", type=bytes32_hex, required=True,
                   help="0x + 64 hex digits (POST /api/commitment)")

    for name, query, help_ in (("spaces", cmd_spaces, "the lot's spaces"),
                               ("rentals", cmd_rentals, "the lot's rental events, with price and window"),
                               ("bookings", cmd_bookings, "the lot's bookings and their states")):
        q = _add(lot_sub, name, query, help_, write=False)
        q.add_argument("--lot", required=True)
        q.add_argument("--from-block", type=int_in(0, UINT64_MAX), default=0,
                       help="first block to scan (the deploy block)")
        q.add_argument("--log-window-blocks", type=int_in(1, 100_000), default=DEFAULT_LOG_WINDOW_BLOCKS,
                       help="most blocks one eth_getLogs asks for (RPC providers refuse wider ranges; "
                       f"default {DEFAULT_LOG_WINDOW_BLOCKS})")

    e = _add(lot_sub, "expire", cmd_expire, "refund a booking never checked in, a day after its end (anyone)")
    e.add_argument("--booking", type=ID, required=True)
    s = _add(lot_sub, "settle", cmd_settle, "settle checked-out bookings (anyone); --overdue: a checked-in "
             "booking never checked out, a day after its end")
    s.add_argument("--booking", type=ID, nargs="+", required=True)
    s.add_argument("--overdue", action="store_true")
    _add(lot_sub, "withdraw", cmd_withdraw, "pay out what the contract credits to the sender")
    c = _add(lot_sub, "credit", cmd_credit, "what the contract credits an account (an owner's earnings, a "
             "renter's refunds) until it withdraws", write=False)
    c.add_argument("--address", required=True)


# ---------------------------------------------------------------------------------------------- shell


class Session:
    """The chain connection and, for writes, the decrypted sender of one command."""

    def __init__(self, args: argparse.Namespace) -> None:
        from edge.chain.sync import connect

        self.args = args
        self.w3 = connect(args.rpc)
        self.sender: LocalAccount | None = _sender(args) if getattr(args, "keystore", None) else None
        self._client: RentalClient | None = None

    @property
    def signer(self) -> LocalAccount:
        if self.sender is None:
            raise LotError("this command sends a transaction: give --keystore and --password-file")
        return self.sender

    @property
    def client(self) -> RentalClient:
        from edge.chain.contract import RentalClient

        if self._client is None:
            address = _address(self.args.contract, "--contract")
            if not self.w3.eth.get_code(address):
                raise LotError(f"--contract {address} has no code on {self.args.rpc}: give the address "
                               "`parkgate lot deploy` printed")
            window = getattr(self.args, "log_window_blocks", DEFAULT_LOG_WINDOW_BLOCKS)
            self._client = RentalClient(self.w3, address, self.sender, log_window_blocks=window)
        return self._client

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])


def _sender(args: argparse.Namespace) -> LocalAccount:
    from edge.chain.keystore import KeystoreError, load_account, read_password
    from edge.config import ConfigError

    try:
        return load_account(args.keystore, read_password(args.password_file, "--password-file"))
    except (KeystoreError, ConfigError) as exc:
        raise LotError(str(exc)) from None


def _address(text: str, flag: str) -> ChecksumAddress:
    from web3 import Web3

    if not Web3.is_address(text):
        raise LotError(f"{flag} {text!r} is not an address: give 0x and 40 hex digits")
    return Web3.to_checksum_address(text)


def _lot(code: str) -> bytes:
    from edge.identity import lot_id

    try:
        return lot_id(code)
    except ValueError as exc:
        raise LotError(f"--lot: {exc}") from None


def _tx(result: Any, **fields: Any) -> dict[str, Any]:
    return {"tx": "0x" + bytes(result.tx_hash).hex(), "gas_used": result.gas_used, **fields}


def _run(func: Callable[[Session], Any], args: argparse.Namespace) -> int:
    """Run one command: print its result, or one sentence for what went wrong (exit 1)."""
    from requests.exceptions import RequestException
    from web3.exceptions import Web3Exception

    from edge.chain.contract import ContractRevert
    from edge.chain.reverts import RevertContext, explain

    try:
        result = func(Session(args))
    except LotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ContractRevert as exc:
        context = getattr(exc, "context", None) or RevertContext()
        print(f"refused: {explain(exc, context)}", file=sys.stderr)
        return 1
    except (RequestException, OSError) as exc:
        print(f"error: cannot reach the chain node at {args.rpc} ({type(exc).__name__}): is it running, "
              "is --rpc right?", file=sys.stderr)
        return 1
    except Web3Exception as exc:  # the node refused the transaction (funds, nonce, fee) or answered nonsense
        print(f"error: the chain node at {args.rpc} refused: {_node_message(exc)}", file=sys.stderr)
        return 1
    _print(result, args.json)
    return 0


def _node_message(exc: Exception) -> str:
    """The node's own message (``{'code': ..., 'message': ...}``) when it gave one, shortened."""
    response = getattr(exc, "rpc_response", None)  # web3's Web3RPCError keeps the node's answer
    error = response.get("error") if isinstance(response, dict) else None
    detail = error.get("message") if isinstance(error, dict) else (exc.args[0] if exc.args else exc)
    text = str(detail)[:300]
    if "insufficient funds" in text.lower():
        text += ": fund the sender's account (parkgate chain keystore show-address) for gas"
    return text


def _print(result: dict[str, Any] | list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
    elif isinstance(result, list):
        for row in result:
            print("  ".join(f"{k}={v}" for k, v in row.items()))
        if not result:
            print("(none)")
    else:
        for key, value in result.items():
            print(f"{key}: {value}")


def _with_context(call: Callable[[], Any], context: Any) -> Any:
    """Run ``call``; a revert carries ``context`` (chain time, rental window) for its sentence."""
    from edge.chain.contract import ContractRevert

    try:
        return call()
    except ContractRevert as exc:
        exc.context = context  # type: ignore[attr-defined]
        raise


# ---------------------------------------------------------------------------------------------- commands


def cmd_deploy(s: Session) -> dict[str, Any]:
    from edge.chain.contract import deploy

    admin = _address(s.args.admin, "--admin") if s.args.admin else s.signer.address
    client = deploy(s.w3, s.signer, admin)
    return {"contract": client.address, "admin": admin, "block": client.deploy_receipt["blockNumber"],
            "chain_id": s.w3.eth.chain_id}


def cmd_register(s: Session) -> dict[str, Any]:
    result = s.client.register_lot(_lot(s.args.lot), s.args.geohash)
    return _tx(result, lot=s.args.lot, geohash=s.args.geohash)


def _fund(s: Session, address: ChecksumAddress, wei: int) -> dict[str, Any]:
    """Send ``wei`` (checked by the parser, ``_wei``) to ``address``."""
    from edge.chain.contract import send_value

    tx = send_value(s.w3, s.signer, address, wei)
    return {"funded_wei": wei, "fund_tx": "0x" + tx.hex(), "balance_wei": s.w3.eth.get_balance(address)}


def cmd_gateway_add(s: Session) -> dict[str, Any]:
    address = _address(s.args.address, "--address")
    out = _tx(s.client.set_gateway(_lot(s.args.lot), address, True), lot=s.args.lot, gateway=address)
    if s.args.fund is not None:
        out |= _fund(s, address, s.args.fund)
    return out


def cmd_gateway_remove(s: Session) -> dict[str, Any]:
    address = _address(s.args.address, "--address")
    return _tx(s.client.set_gateway(_lot(s.args.lot), address, False), lot=s.args.lot, gateway=address,
               enabled=False)


def cmd_gateway_fund(s: Session) -> dict[str, Any]:
    address = _address(s.args.address, "--address")
    return {"gateway": address, **_fund(s, address, s.args.fund)}


def cmd_owner_verify(s: Session) -> dict[str, Any]:
    address = _address(s.args.address, "--address")
    return _tx(s.client.verify_owner(address, s.args.attestation), owner=address, verified=True)


def cmd_owner_revoke(s: Session) -> dict[str, Any]:
    address = _address(s.args.address, "--address")
    return _tx(s.client.revoke_owner(address), owner=address, verified=False)


def cmd_space_add(s: Session) -> dict[str, Any]:
    result = s.client.register_space(_lot(s.args.lot), s.args.location)
    return _tx(result, space_id=result.return_value, lot=s.args.lot, location=s.args.location)


def _space_status(s: Session, space_id: int) -> dict[str, Any]:
    """The space's approval and whether it holds its location, read back from the chain (what the
    transaction did, not what was asked)."""
    space = s.client.get_space(space_id)
    held = s.client.space_at(space.lot_id, space.location) == space_id
    return {"approved": space.approved, "location": space.location, "location_held": held}


def cmd_space_approve(s: Session) -> dict[str, Any]:
    result = s.client.approve_space(s.args.space)
    return _tx(result, space_id=s.args.space, **_space_status(s, s.args.space))


def cmd_space_remove(s: Session) -> dict[str, Any]:
    result = s.client.remove_space(s.args.space)
    out = _tx(result, space_id=s.args.space, **_space_status(s, s.args.space))
    if out["location_held"]:
        print(f"note: space {s.args.space} keeps its location {out['location']} while it has a listing that "
              "has not ended (its bookings stand); run `parkgate lot space remove` again once its listings "
              "have ended to free it", file=sys.stderr)
    return out


def cmd_rental_add(s: Session) -> dict[str, Any]:
    from edge.chain.reverts import RevertContext

    start, end = s.args.start, s.args.end
    context = RevertContext(now=s.now())
    result = _with_context(lambda: s.client.create_rental_event(s.args.space, start, end,
                                                                s.args.price_per_hour_wei), context)
    return _tx(result, rental_id=result.return_value, space_id=s.args.space, start=start, end=end,
               price_per_hour_wei=s.args.price_per_hour_wei)


def cmd_rental_cancel(s: Session) -> dict[str, Any]:
    return _tx(s.client.cancel_rental_event(s.args.rental), rental_id=s.args.rental, cancelled=True)


def cmd_book(s: Session) -> dict[str, Any]:
    from edge.chain.reverts import RevertContext

    start, end = s.args.start, s.args.end
    rental = s.client.get_rental_event(s.args.rental)
    context = RevertContext(now=s.now(), rental_window=(rental.start, rental.end) if rental.end else None)
    result = _with_context(lambda: s.client.request_rental(s.args.rental, start, end, s.args.commitment),
                           context)
    return _tx(result, booking_id=result.return_value, rental_id=s.args.rental, start=start, end=end)


def cmd_spaces(s: Session) -> list[dict[str, Any]]:
    from edge.chain.listings import spaces

    return spaces(s.client, _lot(s.args.lot), s.args.from_block)


def cmd_rentals(s: Session) -> list[dict[str, Any]]:
    from edge.chain.listings import rentals

    return rentals(s.client, _lot(s.args.lot), s.args.from_block)


def cmd_bookings(s: Session) -> list[dict[str, Any]]:
    from edge.chain.listings import bookings

    return bookings(s.client, _lot(s.args.lot), s.args.from_block)


def cmd_expire(s: Session) -> dict[str, Any]:
    return _tx(s.client.expire_booking(s.args.booking), booking_id=s.args.booking, status="expired")


def cmd_settle(s: Session) -> dict[str, Any]:
    """Settle the checked-out bookings among ``--booking``; the others are listed as skipped with their
    state. Nothing to settle is an error (exit 1), and then no transaction is sent."""
    if s.args.overdue:
        if len(s.args.booking) != 1:
            raise LotError("--overdue settles one booking at a time: give one --booking")
        result = s.client.settle_overdue(s.args.booking[0])
        return _tx(result, settled=[e.args["bookingId"] for e in result.named("Settled")], skipped=[])
    states = _booking_states(s, s.args.booking)
    ready = [i for i, state in states.items() if state == "checked_out"]
    if not ready:
        raise LotError(f"nothing settled: {_skipped_words(states)}; only checked-out bookings settle "
                       "(a checked-in one never checked out: --overdue, a day after its end)")
    result = s.client.settle(ready)
    settled = [e.args["bookingId"] for e in result.named("Settled")]
    skipped = [{"booking_id": i, "status": state} for i, state in states.items() if i not in settled]
    if not settled:
        raise LotError(f"nothing settled (their states changed meanwhile): {_skipped_words(states)}")
    return _tx(result, settled=settled, skipped=skipped)


def _booking_states(s: Session, ids: list[int]) -> dict[int, str]:
    """Each id's state on chain (``"unknown"`` for an id no booking has), in the order given, once: read
    in JSON-RPC batches (``RentalClient.get_bookings``)."""
    from edge.chain.contract import ChainBookingStatus

    unique = list(dict.fromkeys(ids))
    bookings = s.client.get_bookings(unique)
    return {i: "unknown" if booking.status is ChainBookingStatus.NONE else booking.status.name.lower()
            for i, booking in zip(unique, bookings, strict=True)}


def _skipped_words(states: dict[int, str]) -> str:
    return ", ".join(f"booking {i} is {state.replace('_', ' ')}" for i, state in states.items())


def cmd_withdraw(s: Session) -> dict[str, Any]:
    result = s.client.withdraw()
    return _tx(result, account=s.signer.address, amount_wei=result.one("Withdrawal").args["amount"])


def cmd_credit(s: Session) -> dict[str, Any]:
    address = _address(s.args.address, "--address")
    return {"account": address, "credit_wei": s.client.pending_withdrawal(address)}
