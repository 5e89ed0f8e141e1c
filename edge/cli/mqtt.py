"""`parkgate mqtt keygen` and `parkgate mqtt sign`: the operator side of signed remote commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge.cli.secretfile import create_secret_file
from edge.mqtt.commands import ACTIONS, generate_key, load_key, sign_command
from edge.store import wall_clock_ms


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
    sign.add_argument("--lane", required=True, help="lane id, or '*' with --action refresh")
    sign.add_argument("--action", required=True, choices=ACTIONS)
    sign.add_argument("--ts", type=int, default=None, help="timestamp in unix ms (default: now)")
    sign.set_defaults(func=cmd_sign)


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
    ts = args.ts if args.ts is not None else wall_clock_ms()
    print(sign_command(key, args.gateway, args.lane, args.action, ts).decode())
    return 0
