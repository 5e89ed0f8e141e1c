"""`parkgate chain ...`: the gateway key, the sync in the foreground, and the sync's status.

    parkgate chain keystore new --keystore FILE --password-file FILE [--private-key-file FILE]
    parkgate chain keystore show-address --keystore FILE
    parkgate chain plate-key new --out FILE
    parkgate chain sync [--config FILE] [--once]
    parkgate chain status [--config FILE] [--json]

Passwords and keys are only ever read from files (a systemd credential under
/run/credentials/parkgate.service/ in production); they are never printed or logged.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import threading
from pathlib import Path

from edge.cli.secretfile import create_secret_file
from edge.config import Config, ConfigError, load_config, read_secret

CONFIG_HELP = ("the gateway's TOML config (default: /etc/parkgate/parkgate.toml if present, else the "
               "built-in defaults)")

# web3 and eth-account take about a second to import: they load inside the commands that need them,
# so `parkgate --help` and the other commands stay fast.


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chain", help="gateway key, rental-contract sync and its status")
    chain_sub = p.add_subparsers(dest="chain_command", metavar="ACTION", required=True)

    keystore = chain_sub.add_parser("keystore", help="create or inspect the gateway's encrypted key")
    key_sub = keystore.add_subparsers(dest="keystore_command", metavar="ACTION", required=True)
    new = key_sub.add_parser("new", help="write a new encrypted JSON keystore (mode 0600, never overwrites)")
    new.add_argument("--keystore", type=Path, required=True, help="keystore file to create")
    new.add_argument("--password-file", type=Path, required=True, help="file holding the password")
    new.add_argument("--private-key-file", type=Path, default=None,
                     help="import this hex private key instead of generating one")
    new.set_defaults(func=cmd_keystore_new)
    show = key_sub.add_parser("show-address", help="print the keystore's address (no password needed)")
    show.add_argument("--keystore", type=Path, required=True)
    show.set_defaults(func=cmd_keystore_address)

    plate_key = chain_sub.add_parser("plate-key", help="the lot secret keying plate commitments")
    plate_sub = plate_key.add_subparsers(dest="plate_key_command", metavar="ACTION", required=True)
    new_key = plate_sub.add_parser(
        "new", help="write a new random lot secret (64 hex digits, mode 0600, never overwrites)",
        description="One secret per lot, shared with the booking service that computes renters' vehicle "
        "commitments (every gateway of the lot uses the same one); never on chain, never in MQTT.")
    new_key.add_argument("--out", type=Path, required=True, help="file to create (chain.plate_key_file)")
    new_key.set_defaults(func=cmd_plate_key_new)

    sync = chain_sub.add_parser("sync", help="run the chain sync in the foreground")
    sync.add_argument("--config", type=Path, default=None, help=CONFIG_HELP)
    sync.add_argument("--once", action="store_true", help="sync until the upload backlog is empty, then exit")
    sync.set_defaults(func=cmd_sync)

    status = chain_sub.add_parser("status", help="backlog, rejected records, last synced block, last error")
    status.add_argument("--config", type=Path, default=None, help=CONFIG_HELP)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=cmd_status)


def cmd_keystore_new(args: argparse.Namespace) -> int:
    from edge.chain.keystore import KeystoreError, create_keystore, read_password

    try:
        password = read_password(args.password_file, "--password-file")
        key = read_secret(args.private_key_file, "--private-key-file") if args.private_key_file else None
        address = create_keystore(args.keystore, password, key)
    except (ConfigError, KeystoreError, ValueError) as exc:
        print(f"cannot create keystore: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.keystore} for address {address}")
    return 0


def cmd_plate_key_new(args: argparse.Namespace) -> int:
    try:
        create_secret_file(args.out, secrets.token_hex(32))
    except OSError as exc:
        print(f"cannot create plate key file {args.out}: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}")
    return 0


def cmd_keystore_address(args: argparse.Namespace) -> int:
    from edge.chain.keystore import KeystoreError, keystore_address

    try:
        print(keystore_address(args.keystore))
    except KeystoreError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    from edge.chain.keystore import KeystoreError
    from edge.chain.sync import SyncError, service_from_config
    from edge.store import StoreError

    try:
        service = service_from_config(load_config(args.config))
    except (ConfigError, KeystoreError, SyncError, StoreError, ValueError) as exc:
        print(f"cannot start the chain sync: {exc}", file=sys.stderr)
        return 1
    try:
        if args.once:
            service.run_until_idle()
        else:
            service.run(threading.Event())
    except SyncError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(json.dumps(service.health().as_dict()))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from edge.chain.sync import stored_status
    from edge.store import Store, StoreError

    try:
        cfg = load_config(args.config)
        with Store(cfg.store_path) as store:
            status = stored_status(store)
    except (ConfigError, StoreError) as exc:
        print(f"cannot read the sync status: {exc}", file=sys.stderr)
        return 1
    status["head_block"] = _head_block(cfg.chain.rpc_url) if cfg.chain.enabled else None
    if status["last_error"] is None:  # what the running daemon's sync last failed on (not in the store)
        status["last_error"] = _daemon_chain_error(cfg)
    if args.json:
        print(json.dumps(status))
    else:
        for key, value in status.items():
            if key == "rejected_records":
                for line in value:
                    print(f"rejected record: {line}")
            else:
                print(f"{key}: {value}")
    return 0


def _head_block(rpc_url: str) -> int | str:
    from edge.chain.sync import connect

    try:
        return int(connect(rpc_url, timeout_s=3.0).eth.block_number)
    except Exception as exc:  # noqa: BLE001 - status must answer even when the node is down
        return f"unreachable ({type(exc).__name__})"


def _daemon_chain_error(cfg: Config) -> str | None:
    """The last error of the running daemon's sync (its status file), or None when it is not running."""
    from edge.daemon.status import read_status, status_path

    try:
        snapshot = read_status(status_path(cfg.gateway.state_dir))
    except ValueError:
        return None
    error = None if snapshot["stale"] else snapshot.get("chain", {}).get("last_error")
    return str(error) if error else None
