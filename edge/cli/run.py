"""`parkgate run` (the daemon) and `parkgate status` (what a running daemon reports)."""

from __future__ import annotations

import argparse
import json
import logging

from edge.config import ConfigError, load_config
from edge.daemon.status import read_status, render_status, status_path

CONFIG_HELP = "config file (default: /etc/parkgate/parkgate.toml if present, else the built-in defaults)"


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run the gateway daemon (lanes, decisions, recording, sync)")
    run.add_argument("--config", metavar="FILE", default=None, help=CONFIG_HELP)
    run.set_defaults(func=cmd_run)
    status = sub.add_parser("status", help="lanes, backlog, last reads, chain and broker health")
    status.add_argument("--config", metavar="FILE", default=None, help=CONFIG_HELP)
    status.add_argument("--json", action="store_true", help="print the raw status JSON")
    status.set_defaults(func=cmd_status)


def cmd_run(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(exc)
        return 2
    root = logging.getLogger()
    if args.verbose == 0:
        root.setLevel(getattr(logging, cfg.gateway.log_level.upper()))
    from edge.daemon.service import run_daemon  # heavy imports (onnxruntime, web3) only when running

    return run_daemon(cfg)


def cmd_status(args: argparse.Namespace) -> int:
    """Exit 0 while the daemon is running and fresh, 1 when it is stale, stopped or not serving yet
    (starting: no lane connected), 2 without status."""
    try:
        cfg = load_config(args.config)
        snapshot = read_status(status_path(cfg.gateway.state_dir))
    except (ConfigError, ValueError) as exc:
        print(exc)
        return 2
    if args.json:
        print(json.dumps(snapshot, indent=2, sort_keys=True))
    else:
        print("\n".join(render_status(snapshot)))
    return 1 if snapshot["stale"] or snapshot.get("state") != "running" else 0
