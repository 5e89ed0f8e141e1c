"""`parkgate mqtt keygen` and `parkgate mqtt sign`: the operator side of signed remote commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from edge.cli.secretfile import create_secret_file
from edge.clock import TrustedClock
from edge.daemon.status import gateway_reading, running_daemon_best_ms, status_path
from edge.identity import normalise_plate, plate_key_bytes
from edge.mqtt.commands import ACTIONS, LIST_ACTIONS, LIST_NAMES, generate_key, load_key, sign_command

if TYPE_CHECKING:
    from edge.config import Config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mqtt", help="gateway key and signed remote commands for MQTT")
    mqtt_sub = p.add_subparsers(dest="mqtt_command", metavar="ACTION", required=True)

    keygen = mqtt_sub.add_parser("keygen", help="write a new per-gateway key file (hex, mode 0600)")
    keygen.add_argument("--out", type=Path, required=True, help="key file to create (refuses to overwrite)")
    keygen.set_defaults(func=cmd_keygen)

    sign = mqtt_sub.add_parser(
        "sign", help="print a signed command to publish on <prefix>/<gateway>/cmd/<lane>",
        epilog="example: mosquitto_pub -t parkgate/gw-1/cmd/in-1 "
               "-m \"$(parkgate mqtt sign --key-file gw-1.key --gateway gw-1 --lane in-1 --action open)\"")
    sign.add_argument("--key-file", type=Path, required=True, help="the gateway's key file (hex)")
    sign.add_argument("--gateway", required=True, help="gateway id the command is for")
    sign.add_argument("--lane", required=True,
                      help="lane id, or '*' with --action refresh, list-add, list-remove")
    sign.add_argument("--action", required=True, choices=ACTIONS)
    sign.add_argument("--ts", type=int, default=None,
                      help="timestamp in unix ms (default: now, by the best time of the daemon running here)")
    sign.add_argument("--config", metavar="FILE", default=None,
                      help="the config of the daemon on this machine: its best time dates the command "
                      "(default: /etc/parkgate/parkgate.toml if present and readable; without it, or "
                      "with no daemon running: this machine's clock, said on stderr)")
    listed = sign.add_argument_group("list-add / list-remove (lane '*')")
    listed.add_argument("--list", choices=LIST_NAMES, help="the list to change")
    listed.add_argument("--entry", help="the vehicle commitment (0x + 64 hex); or give --plate")
    listed.add_argument("--plate", help="a plate, committed here with --plate-key-file and --lot (the plate "
                        "itself is never sent)")
    listed.add_argument("--plate-key-file", type=Path, help="the lot secret (chain.plate_key_file)")
    listed.add_argument("--lot", help="the lot code (gateway.lot_id)")
    listed.add_argument("--from", dest="valid_from", metavar="TIME",
                        help="list-add: valid from (ISO 8601)")
    listed.add_argument("--until", dest="valid_until", metavar="TIME",
                        help="list-add: valid until (ISO 8601)")
    sign.set_defaults(func=cmd_sign)

    signer = mqtt_sub.add_parser(
        "ha-signer", help="turn Home Assistant open-button presses into signed open commands (runs until "
        "stopped)", description="Subscribes to mqtt.ha_open_button_topic and publishes a signed open on "
        "cmd/<lane> for each press (lane id as payload). Whoever may publish to that topic may open gates: "
        "restrict it in the broker's ACL to Home Assistant's user.")
    signer.add_argument("--config", metavar="FILE", default=None,
                        help="the gateway's config (broker, command key, lanes)")
    signer.set_defaults(func=cmd_ha_signer)


def cmd_keygen(args: argparse.Namespace) -> int:
    try:
        create_secret_file(args.out, generate_key())
    except OSError as exc:
        print(f"cannot create key file {args.out}: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}")
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    try:
        key = load_key(args.key_file)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    try:
        list_args = _list_args(args) if args.action in LIST_ACTIONS else None
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    from edge.config import ConfigError

    try:
        ts = int(args.ts) if args.ts is not None else _sign_time(args.config)
    except ConfigError as exc:  # an explicit --config only; stdout stays empty (it is published)
        print(f"cannot read --config {args.config}, which dates the command: {exc}", file=sys.stderr)
        return 2
    print(sign_command(key, args.gateway, args.lane, args.action, ts, args=list_args).decode())
    return 0


def _sign_time(config: str | None) -> int:
    """Now by the best time of the daemon running on this machine (its ``status.json``, found through the
    config): on a gateway whose wall clock is behind, the daemon would refuse a command dated by the bare
    wall clock as stale. Without one (no readable config, no daemon running), this machine's clock, said
    on stderr. ConfigError: an explicit ``config`` that cannot be read."""
    from edge.config import DEFAULT_CONFIG_PATH, ConfigError, load_config

    clock = TrustedClock()
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        if config is not None:
            raise
        _note(f"cannot use {DEFAULT_CONFIG_PATH} ({'; '.join(map(str, exc.issues))}): dated with this "
              "machine's clock; give --config FILE or --ts MS")
        return clock.reading().best_ms
    best = running_daemon_best_ms(cfg.gateway.state_dir)
    if best is None:
        _note(f"no running daemon's status at {status_path(cfg.gateway.state_dir)}: dated with this "
              "machine's clock; give --ts MS to date it yourself")
    else:
        clock.observe(best)
    return clock.reading().best_ms


def _note(line: str) -> None:
    print(f"note: {line}", file=sys.stderr)


def _list_args(args: argparse.Namespace) -> dict[str, object]:
    """The signed ``args`` of a list command; ValueError naming the missing or bad option."""
    from edge.clock import parse_local_time

    if args.list is None:
        raise ValueError(f"--action {args.action} needs --list allow|deny")
    entry = args.entry
    if args.plate is not None:
        if args.plate_key_file is None or args.lot is None:
            raise ValueError("--plate needs --plate-key-file and --lot (to commit it here)")
        from edge.access.decide import commitment_function
        from edge.chain.syncplan import chain_lot_code
        from edge.config import read_secret

        key = plate_key_bytes(read_secret(args.plate_key_file, "--plate-key-file"))
        entry = commitment_function(key, chain_lot_code(args.lot))(normalise_plate(args.plate))
    if entry is None:
        raise ValueError(f"--action {args.action} needs --entry 0x... or --plate")
    body: dict[str, object] = {"list": args.list, "entry": entry.lower()}
    times = {"from": parse_local_time(args.valid_from, "--from"),
             "until": parse_local_time(args.valid_until, "--until")}
    body.update({k: v for k, v in times.items() if v is not None and args.action == "list-add"})
    return body


def gateway_time(cfg: Config) -> Callable[[], int]:
    """The time the signer dates its commands with: the best time (``edge.clock``) of the gateway's daemon
    running on this machine (its ``status.json``), never behind the sanity floor nor backwards. The bare
    wall clock would not do: while it is behind (no NTP yet), the daemon judges freshness with its best
    time and would refuse every press as stale."""
    clock = TrustedClock()
    return lambda: gateway_reading(cfg.gateway.state_dir, clock).best_ms


def cmd_ha_signer(args: argparse.Namespace) -> int:
    import signal
    import threading

    from edge.config import ConfigError, load_config
    from edge.mqtt.hasigner import HaSigner

    try:
        cfg = load_config(args.config)
        signer = HaSigner(cfg, gateway_time(cfg)).start()
    except (ConfigError, ValueError) as exc:
        print(f"cannot start the signer: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if not signer.subscribed.wait(30):
        print(f"not subscribed to {signer.topic} yet (broker down?); retrying in the background", flush=True)
    print(f"signing open presses from {signer.topic} for lanes {', '.join(sorted(signer.lanes))}", flush=True)
    stop.wait()
    signer.stop()
    return 0
