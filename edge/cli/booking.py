"""`parkgate booking-service`: run the lot's booking service (HTTP API) in the foreground.

    parkgate booking-service --contract ADDRESS --lot CODE --plate-key-file FILE --plate-regions de
                             [--rpc URL] [--host 127.0.0.1] [--port 8080] [--from-block N]
                             [--log-window-blocks 2000] [--confirmations 2]

Run by the lot operator, never on a gateway: it holds the lot secret (the file `parkgate chain
plate-key new` wrote, the same one the lot's gateways use). Put it behind a TLS-terminating proxy;
with --forwarded-allow-ips the proxy's X-Forwarded-For names the client for the rate limits. Without
it, X-Forwarded-For is ignored and the rate limits count the connection's address (the proxy's).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge.chain.blocks import DEFAULT_CONFIRMATIONS, DEFAULT_LOG_WINDOW_BLOCKS
from edge.cli.lot import DEFAULT_RPC, UINT64_MAX, int_in


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("booking-service", help="run the lot's booking service: renters' vehicle commitments "
                       "over HTTP", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rpc", default=DEFAULT_RPC,
                   help=f"JSON-RPC URL of the chain node (default {DEFAULT_RPC})")
    p.add_argument("--contract", required=True, help="address of the deployed ParkgateRental")
    p.add_argument("--lot", required=True, help="the lot code, e.g. LOT-NORD-1")
    p.add_argument("--plate-key-file", type=Path, required=True,
                   help="the lot secret (never on the command line)")
    p.add_argument("--plate-regions", required=True,
                   help="plate layouts the lot accepts: region codes (edge.vision.plates), e.g. de or at,de")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--per-account-per-hour", type=int, default=10,
                   help="commitment requests per renter account")
    p.add_argument("--per-address-per-hour", type=int, default=30,
                   help="commitment requests per client address (an IPv6 /64); an IPv6 /48 or IPv4 /24 gets "
                   "4 times this, an IPv6 /32 16 times")
    p.add_argument("--per-instance-per-hour", type=int, default=1000,
                   help="commitment requests this instance answers in all, from every client together "
                   "(logged as an ALERT when spent)")
    p.add_argument("--reads-per-address-per-hour", type=int, default=3600,
                   help="chain reads (rentals, booking states) per client address, bursts of 60")
    p.add_argument("--rentals-cache-s", type=float, default=5.0,
                   help="seconds the lot's rental list is cached between chain reads")
    p.add_argument("--from-block", type=int_in(0, UINT64_MAX), default=0,
                   help="first block to scan for the lot's events")
    p.add_argument("--log-window-blocks", type=int_in(1, 100_000), default=DEFAULT_LOG_WINDOW_BLOCKS,
                   help="most blocks one eth_getLogs asks for (RPC providers refuse wider ranges; default "
                   f"{DEFAULT_LOG_WINDOW_BLOCKS}); the service reads each confirmed block once and caches "
                   "the lot's events")
    p.add_argument("--confirmations", type=int_in(0, 256), default=DEFAULT_CONFIRMATIONS,
                   help="blocks on top before a read event is cached; newer blocks are read on every "
                   "request, so a reorg of them leaves nothing stale, and a deeper one (the last cached "
                   f"block's hash changed) drops the cache (default {DEFAULT_CONFIRMATIONS})")
    p.add_argument("--forwarded-allow-ips", default=None,
                   help="comma-separated addresses or networks of the reverse proxies whose X-Forwarded-For "
                   "names the client (e.g. 127.0.0.1); without it X-Forwarded-For is ignored; '*' is refused")
    p.set_defaults(func=cmd_booking_service)


def cmd_booking_service(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from edge.booking.service import BookingService, Limits, create_app
    except ImportError as exc:
        print(f"the booking service needs the booking extra ({exc.name} is missing): "
              "pip install 'parkgate[booking]'", file=sys.stderr)
        return 1
    from edge.chain.contract import RentalClient
    from edge.chain.sync import connect
    from edge.config import ConfigError, read_secret
    from edge.identity import check_lot_code, check_secret, plate_key_bytes
    from edge.vision.plates import region_patterns

    try:
        forwarded = forwarded_allow_ips(args.forwarded_allow_ips)
        check_lot_code(args.lot)
        secret = check_secret(plate_key_bytes(read_secret(args.plate_key_file, "--plate-key-file")))
        layouts = region_patterns(args.plate_regions)
        if min(args.per_account_per_hour, args.per_address_per_hour, args.reads_per_address_per_hour,
               args.per_instance_per_hour) < 1:
            raise ValueError("--per-account-per-hour, --per-address-per-hour, --per-instance-per-hour and "
                             "--reads-per-address-per-hour must be at least 1")
        w3 = connect(args.rpc)
        if not w3.eth.get_code(args.contract):
            raise ValueError(f"--contract {args.contract} has no code on {args.rpc}")
        client = RentalClient(w3, args.contract, log_window_blocks=args.log_window_blocks)
        service = BookingService(client, args.lot, secret, layouts,
                                 Limits(args.per_account_per_hour, args.per_address_per_hour,
                                        reads_per_address_per_hour=args.reads_per_address_per_hour,
                                        per_instance_per_hour=args.per_instance_per_hour),
                                 rentals_ttl_s=max(0.0, args.rentals_cache_s), from_block=args.from_block,
                                 confirmations=args.confirmations)
    except (ConfigError, ValueError) as exc:
        print(f"cannot start the booking service: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the node is down or answers nonsense: say which
        print(f"cannot start the booking service: the chain node at {args.rpc} failed "
              f"({type(exc).__name__}: {str(exc)[:200]})", file=sys.stderr)
        return 1
    # uvicorn trusts X-Forwarded-For from 127.0.0.1 (or $FORWARDED_ALLOW_IPS) by default: any local
    # process, or a local proxy passing the client's header on, would pick the address the limits count.
    uvicorn.run(create_app(service), host=args.host, port=args.port, log_level="info",
                proxy_headers=forwarded is not None, forwarded_allow_ips=forwarded)
    return 0


def forwarded_allow_ips(text: str | None) -> list[str] | None:
    """The proxies --forwarded-allow-ips names (None: trust no X-Forwarded-For); ValueError for '*' (every
    client could pick the address the rate limits count) and for anything not an address or network."""
    if text is None:
        return None
    from edge.config import proxy_address

    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ValueError("--forwarded-allow-ips is empty: name the reverse proxy's address (e.g. 127.0.0.1), "
                         "or leave the option out to ignore X-Forwarded-For")
    for item in items:
        if item == "*":
            raise ValueError("--forwarded-allow-ips '*' would trust X-Forwarded-For from every client, so "
                             "any client could pick the address the rate limits count: name the reverse "
                             "proxy's addresses or networks (e.g. 127.0.0.1 or 10.0.0.0/24)")
        if not proxy_address(item):  # the console's trusted_proxies rule: no /0, host bits clear
            raise ValueError(f"--forwarded-allow-ips {item[:60]!r} is not an IP address or network: name "
                             "the reverse proxy's addresses or networks (e.g. 127.0.0.1 or 10.0.0.0/24)")
    return items
