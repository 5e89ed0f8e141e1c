"""`parkgate store check|backup|recover`: look at, copy and salvage the gateway's store.

- ``check``: the file, its initialised marker, ``PRAGMA integrity_check`` and foreign keys, without
  changing anything (exit 0 sound, 1 damaged or refused);
- ``backup [--out FILE]``: an online copy (SQLite's backup API: consistent while the daemon runs) to
  ``<state_dir>/backups/<store>-<UTC time>`` by default, checked after copying;
- ``recover``: with the daemon stopped, salvage every readable row into a new store file, keep the
  damaged one aside as ``<store>.damaged-<UTC time>`` and put the salvaged one in its place; with
  ``--from BACKUP`` put a backup in its place instead (the current file is kept aside too).

docs/operations.md, "Store recovery", walks through them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import time
from pathlib import Path

from edge.config import load_config
from edge.daemon.status import read_status, status_path
from edge.store import integrity

CONFIG_HELP = "config file (default: /etc/parkgate/parkgate.toml if present, else the built-in defaults)"


def register(sub: argparse._SubParsersAction) -> None:
    store = sub.add_parser("store", help="check, back up or recover the gateway's store")
    actions = store.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="integrity of the store file (read-only)")
    backup = actions.add_parser("backup", help="online copy of the store (safe while the daemon runs)")
    backup.add_argument("--out", metavar="FILE", default=None,
                        help="the copy (a new file; default <state_dir>/backups/<store>-<UTC time>)")
    recover = actions.add_parser("recover", help="salvage a damaged store (stop the daemon first)")
    recover.add_argument("--from", dest="source", metavar="BACKUP", default=None,
                         help="put this backup in place of the store instead of salvaging")
    for parser, func in ((check, cmd_check), (backup, cmd_backup), (recover, cmd_recover)):
        parser.add_argument("--config", metavar="FILE", default=None, help=CONFIG_HELP)
        parser.set_defaults(func=func)


def _paths(args: argparse.Namespace) -> tuple[Path, Path]:
    cfg = load_config(args.config)
    return cfg.store_path, cfg.gateway.state_dir


def cmd_check(args: argparse.Namespace) -> int:
    store, _ = _paths(args)  # a ConfigError: printed by edge.cli.main, exit 2
    report = integrity.check(store)
    for fact in report.facts:
        print(fact)
    if report.ok:
        print(f"OK {store}")
        return 0
    print(f"DAMAGED {store}:")
    for problem in report.problems:
        print(f"  {problem}")
    print(integrity.recovery_steps(store))
    return 1


def cmd_backup(args: argparse.Namespace) -> int:
    store, state_dir = _paths(args)  # a ConfigError: printed by edge.cli.main, exit 2
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dest = Path(args.out) if args.out else state_dir / "backups" / f"{store.name}-{stamp}"
    refusal = integrity.preflight(store)
    if refusal or not store.exists():
        print(f"cannot back up: {refusal or f'{store} does not exist'}")
        return 1
    try:
        problems = integrity.backup(store, dest)
    except (OSError, sqlite3.Error) as exc:
        print(f"backup of {store} to {dest} failed: {exc}")
        return 1
    if problems:
        print(f"backup {dest} written, but its check failed: {problems[0]}; the store itself may be damaged "
              "(`parkgate store check`)")
        return 1
    print(f"backup {dest} ({dest.stat().st_size} bytes), checked OK")
    return 0


def _daemon_running(state_dir: Path) -> bool:
    try:
        return not read_status(status_path(state_dir))["stale"]
    except ValueError:
        return False


def cmd_recover(args: argparse.Namespace) -> int:
    store, state_dir = _paths(args)  # a ConfigError: printed by edge.cli.main, exit 2
    if _daemon_running(state_dir):
        print("the daemon is running: stop it first (systemctl stop parkgate)")
        return 1
    if args.source:
        return _restore(Path(args.source), store)
    if not store.exists() or store.stat().st_size == 0:
        print(f"nothing to salvage in {store} (missing or empty): restore a backup with "
              "`parkgate store recover --from BACKUP`, or delete "
              f"{integrity.marker_path(store).name} to start again with an empty store on purpose")
        return 1
    return _salvage(store)


def _salvage(store: Path) -> int:
    from edge.store import Store  # sqlite-utils: only when salvaging

    def create_schema(path: Path) -> None:
        Store(path).close()
        integrity.marker_path(path).unlink(missing_ok=True)

    new = integrity.aside_name(store, "salvage")
    try:
        results = integrity.salvage(store, new, create_schema)
    except (OSError, sqlite3.Error) as exc:
        print(f"salvage of {store} failed: {exc}; {store} is unchanged")
        return 1
    for result in results:
        print(f"  {result.table}: {result.copied} rows copied" + (f"; {result.lost}" if result.lost else ""))
    aside = integrity.move_aside(store, "damaged")
    os.replace(new, store)
    lost = [r.table for r in results if r.lost]
    print(f"recovered {store} ({'some rows lost in: ' + ', '.join(lost) if lost else 'every row read'}); "
          f"the damaged file is kept as {aside}")
    return 0


def _restore(backup: Path, store: Path) -> int:
    report = integrity.check(backup)
    if not report.ok or not backup.exists():
        print(f"backup {backup} is not usable: {'; '.join(report.problems) or 'it does not exist'}")
        return 1
    aside = integrity.move_aside(store, "replaced") if store.exists() else None
    tmp = store.with_name(store.name + ".restoring")
    shutil.copyfile(backup, tmp)
    os.chmod(tmp, 0o600)
    os.replace(tmp, store)
    print(f"restored {store} from {backup}" + (f"; the previous file is kept as {aside}" if aside else ""))
    return 0
