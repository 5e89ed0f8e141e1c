"""`parkgate events`: the recent passes from the gate log, newest first, filtered.

    parkgate events [--lane L] [--kind check_in|denied|...] [--reason TEXT] [--since TIME] [--limit N]
                    [--json] [--config FILE]

Reads the store read-only (the daemon keeps writing meanwhile); plates appear masked, as stored.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from edge.cli.lists import CliError, parse_time_option
from edge.config import ConfigError, load_config
from edge.store.schema import GATE_EVENT_KINDS

CONFIG_HELP = "config file (default: /etc/parkgate/parkgate.toml if present, else the built-in defaults)"
COLUMNS = ("seq", "event_id", "occurred_at_ms", "lane", "direction", "kind", "plate_masked", "confidence",
           "reason", "booking_id", "evidence_path")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("events", help="recent passes (gate events), newest first, with filters")
    p.add_argument("--lane", help="only this lane")
    p.add_argument("--kind", choices=GATE_EVENT_KINDS, help="only this kind of event")
    p.add_argument("--reason", help="only events whose reason contains TEXT (e.g. no_booking, deny_listed)")
    p.add_argument("--since", metavar="TIME", help="only events at or after TIME (ISO 8601, local time)")
    p.add_argument("--limit", type=int, default=20, help="at most N events (default 20)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--config", metavar="FILE", default=None, help=CONFIG_HELP)
    p.set_defaults(func=cmd_events)


def query(args: argparse.Namespace) -> tuple[str, list[Any]]:
    """The SELECT for the filters (pure: tested without a store)."""
    where, params = [], []
    if args.lane:
        where.append("lane = ?")
        params.append(args.lane)
    if args.kind:
        where.append("kind = ?")
        params.append(args.kind)
    if args.reason:
        where.append("instr(reason, ?) > 0")
        params.append(args.reason)
    since = parse_time_option(args.since, "--since")
    if since is not None:
        where.append("occurred_at_ms >= ?")
        params.append(since)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    return (f"SELECT {', '.join(COLUMNS)} FROM gate_events{clause} ORDER BY seq DESC LIMIT ?",
            [*params, max(args.limit, 0)])


def read_only_uri(path: Path) -> str:
    """A read-only SQLite URI that leaves no file behind: with the daemon's -wal and -shm there, a plain
    read-only open uses them; without them (a cleanly stopped daemon: everything is in the main file) it
    opens immutable, since a reader would otherwise create them as its own user (as root, a daemon
    running as parkgate could then not open its store)."""
    wal = [path.with_name(path.name + suffix).exists() for suffix in ("-wal", "-shm")]
    return f"file:{path}?mode=ro" + ("" if all(wal) else "&immutable=1")


def cmd_events(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)
        sql, params = query(args)
    except (ConfigError, CliError) as exc:
        print(exc, file=sys.stderr)
        return 1
    path = cfg.store_path
    if not path.is_file():
        print(f"no store at {path} (gateway.state_dir); has parkgate run yet?", file=sys.stderr)
        return 1
    try:
        conn = sqlite3.connect(read_only_uri(path), uri=True, timeout=5)
        try:
            rows = [dict(zip(COLUMNS, row, strict=True)) for row in conn.execute(sql, params)]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        print(f"cannot read {path}: {exc}", file=sys.stderr)
        return 1
    for row in rows:
        if args.json:
            print(json.dumps(row))
        else:
            when = datetime.fromtimestamp(row["occurred_at_ms"] / 1000).isoformat(sep=" ", timespec="seconds")
            confidence = "-" if row["confidence"] is None else f"{row['confidence']:.2f}"
            print(f"{when}  {row['lane']:<10} {row['direction']:<5} {row['kind']:<9} "
                  f"{row['plate_masked'] or '-':<10} {confidence:<5} {row['reason']}")
    if not args.json:
        print(f"{len(rows)} event(s)")
    return 0
