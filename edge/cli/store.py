"""`parkgate store check|backup|recover|prune|outbox`: look at, copy, salvage and prune the gateway's store.

- ``check``: the file, its initialised marker, ``PRAGMA integrity_check`` and foreign keys, without
  changing anything (exit 0 sound, 1 damaged or refused);
- ``backup [--out FILE] [--keep N]``: an online copy (SQLite's backup API: consistent while the daemon
  runs) to ``<state_dir>/backups/<store>-<UTC time>`` by default, checked after copying; then all but the
  newest N backups there are deleted (default 7);
- ``recover``: with the daemon stopped, salvage every readable row into a new store file, keep the
  damaged one aside as ``<store>.damaged-<UTC time>`` and put the salvaged one in its place; with
  ``--from BACKUP`` put a backup in its place instead (the current file is kept aside too);
- ``prune [--dry-run]``: the store retention the daemon runs daily, now: delete the rows older than
  ``[store] retention_days`` (by the best time, ``edge.clock``) that can go without losing anything
  (``Store.prune``); safe while the daemon runs (short transactions). ``--dry-run`` counts only;
- ``outbox [--destination D] [--state S] [--json]``: the deliveries the sender gave up (rejected by the
  contract, dead: cannot be sent), one line each, newest first; they keep their gate event from the retention;
- ``outbox drop ID... | --all-rejected | --all-dead --by NAME --yes``: an operator gives them up too: each
  becomes delivered ('done', ack_ref "dropped by NAME (user U[, sudo by S])", logged), so the retention
  prunes it [store] retention_days after the drop;
- ``outbox retry ID... | --all-rejected --by NAME --yes``: an operator who fixed the cause of a rejection
  sends rejected chain rows again, under a new record number (``Store.retry_rejected_outbox``).

Nothing is lost on a full disk or a crash: a copy is complete and fsynced before the store is touched, and a
failed backup, salvage or restore removes its partial file and leaves the store as it was. Run as root,
the new store gets the old one's owner, group and mode (the daemon's user must write it); another user
who does not own the store is refused.

docs/operations.md, "Store recovery", walks through them.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import sqlite3
import stat
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.config import load_config
from edge.daemon.status import display_reading, read_status, status_path
from edge.store import integrity
from edge.store.schema import CHAIN_DESTINATION, OUTBOX_DESTINATIONS, OUTBOX_GIVEN_UP
from edge.store.store import OUTBOX_ACTIONS, owner_of, user_name

if TYPE_CHECKING:
    from edge.store import OutboxRow

log = logging.getLogger(__name__)
# `store outbox drop|retry`: who ... them (the past tense: OUTBOX_ACTIONS), and what happens to the rows next
_PRESENT = {"drop": "drops", "retry": "retries"}
_AFTER = {"drop": "the store retention prunes them with their gate events [store] retention_days after "
                  "this drop",
          "retry": "the daemon sends them under new record numbers within chain.poll_interval_s "
                   "(`parkgate chain status` shows the backlog)"}
DEFAULT_KEEP = 7  # a daily timer keeps a week on the SD card; copy them off the device for longer
CONFIG_HELP = "config file (default: /etc/parkgate/parkgate.toml if present, else the built-in defaults)"


def register(sub: argparse._SubParsersAction) -> None:
    store = sub.add_parser("store", help="check, back up, recover or prune the gateway's store; its given-up "
                           "deliveries")
    actions = store.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="integrity of the store file (read-only)")
    backup = actions.add_parser("backup", help="online copy of the store (safe while the daemon runs)")
    backup.add_argument("--out", metavar="FILE", default=None,
                        help="the copy (a new file; default <state_dir>/backups/<store>-<UTC time>)")
    backup.add_argument("--keep", metavar="N", type=_count, default=DEFAULT_KEEP,
                        help="after a good backup into <state_dir>/backups, delete all but the newest N "
                        f"there (default {DEFAULT_KEEP}; 0 keeps every one; never with --out)")
    recover = actions.add_parser("recover", help="salvage a damaged store (stop the daemon first)")
    recover.add_argument("--from", dest="source", metavar="BACKUP", default=None,
                         help="put this backup in place of the store instead of salvaging")
    prune = actions.add_parser("prune", help="delete delivered rows older than [store] retention_days "
                               "(the daemon does it daily; safe while it runs)")
    prune.add_argument("--dry-run", action="store_true", help="count what would be deleted, change nothing")
    outbox = _register_outbox(actions)
    for parser, func in ((check, cmd_check), (backup, cmd_backup), (recover, cmd_recover),
                         (prune, cmd_prune), (outbox, cmd_outbox)):
        parser.add_argument("--config", metavar="FILE", default=None, help=CONFIG_HELP)
        parser.set_defaults(func=func)


OUTBOX_DESCRIPTION = """\
The deliveries the gateway gave up: 'rejected' (the rental contract refused the gate record; a retry
cannot help) and 'dead' (the row cannot be sent at all). MQTT rows never end up here: a broker refusal
is retried. Such a row keeps its gate event from the store retention ([store] retention_days) for ever.
Look at them here (and at the reason in last_error); once you have dealt with one (or decided it does
not matter), `parkgate store outbox drop` ends it, so the retention can prune it with its gate event;
once you have fixed why the contract rejected one, `parkgate store outbox retry` sends it again.
Each drop and retry stays with its row (who, when, from which state), delivered or not, for as long as
the row is kept: `parkgate store outbox --acted` lists the rows operators acted on, in any state."""
DROP_DESCRIPTION = """\
Give up delivering rejected or dead outbox rows: each becomes delivered ('done'), with ack_ref
"dropped by NAME (user U)", its last_error "was rejected: <reason>" and updated_at_ms the time of the
drop (the best time); the record is not sent again, and the retention prunes it [store] retention_days
after the drop. Each row dropped is logged (WARNING) and keeps the drop in its history (--acted). Any
other row (pending, in flight, done, missing) refuses the whole drop. Without --yes it prints what
would be dropped and exits 1. Example:
  parkgate store outbox --state rejected
  sudo -u parkgate parkgate store outbox drop 17 18 --by alice --yes"""
RETRY_DESCRIPTION = """\
Send rejected chain rows again once you have fixed why the rental contract refused them (the reason is
in last_error): e.g. WRONG_LOT, the gateway key was not authorised for the lot (a lot admin ran
setGateway); BAD_STATE, the booking was not in a state that takes the record. Each row is back to
'pending' under a new record number (the contract skips a number it has seen), as the sync's own
retry does, with last_error "retried by NAME (user U); was rejected: <reason>" (kept in the row's
history after delivery or another rejection: `parkgate store outbox --acted`); the running daemon
sends it within chain.poll_interval_s. If the cause is still there, the contract rejects it again.
Only chain rows in state rejected: a dead row cannot be sent (drop it), any other row or a missing id
refuses the whole retry. Without --yes it prints what would be retried and exits 1. Example:
  parkgate store outbox --state rejected
  sudo -u parkgate parkgate store outbox retry 17 --by alice --yes"""


def _register_outbox(actions: argparse._SubParsersAction) -> argparse.ArgumentParser:
    outbox = actions.add_parser("outbox", help="list rejected and dead deliveries; drop them",
                                description=OUTBOX_DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    outbox.add_argument("--destination", choices=OUTBOX_DESTINATIONS, help="only this destination's rows")
    outbox.add_argument("--state", choices=OUTBOX_GIVEN_UP, help="only rows in this state")
    outbox.add_argument("--acted", action="store_true",
                        help="instead: the rows an operator dropped or retried, in any state (delivered "
                        "too), each with what was done, by whom and when")
    outbox.add_argument("--json", action="store_true", help="one JSON object per row")
    actions_ = outbox.add_subparsers(dest="outbox_command", metavar="drop|retry", required=False,
                                     title="action (optional; without it, the rows are listed)")
    raw = argparse.RawDescriptionHelpFormatter
    drop = actions_.add_parser("drop", help="give up rejected or dead rows (marks them done, audited)",
                               description=DROP_DESCRIPTION, formatter_class=raw)
    retry = actions_.add_parser("retry", help="send rejected chain rows again under a new number, once the "
                                "cause is fixed (audited)", description=RETRY_DESCRIPTION,
                                formatter_class=raw)
    for parser, verb in ((drop, "drop"), (retry, "retry")):
        parser.add_argument("ids", metavar="ID", nargs="*", type=_row_id,
                            help="outbox ids (the first column of `parkgate store outbox`)")
        parser.add_argument("--all-rejected", action="store_true",
                            help="every rejected row" if verb == "drop" else "every rejected chain row")
        if verb == "drop":
            parser.add_argument("--all-dead", action="store_true", help="every dead row")
        parser.add_argument("--by", metavar="NAME", required=True,
                            help=f"who {_PRESENT[verb]} them (kept in the row)")
        parser.add_argument("--yes", action="store_true", help=f"{verb} them (without: show what would be "
                            f"{_past(verb)})")
        parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help=CONFIG_HELP)
    drop.set_defaults(func=cmd_outbox_drop)
    retry.set_defaults(func=cmd_outbox_retry)
    return outbox


def _row_id(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; allowed: an outbox id, a whole number "
                                         "1 or more (the first column of `parkgate store outbox`)")
    return int(text)


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; allowed: a whole number 0 or more "
                                         "(0 keeps every backup)")
    return int(text)


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
    folder = state_dir / "backups"
    dest = Path(args.out) if args.out else folder / f"{store.name}-{stamp}"
    refusal = integrity.preflight(store)
    if refusal or not store.exists():
        print(f"cannot back up: {refusal or f'{store} does not exist'}")
        return 1
    try:
        problems = integrity.backup(store, dest)
    except (OSError, sqlite3.Error) as exc:
        print(f"backup of {store} to {dest} failed: {exc}; no backup was written{_space_hint(exc, dest)}")
        return 1
    if not args.out and os.geteuid() == 0:  # root's backup: the service user may read and prune it
        _give_to_owner(folder, owner_of(store), 0o700)
        _give_to_owner(dest, owner_of(store), 0o600)
    if problems:
        print(f"backup {dest} written, but its check failed: {problems[0]}; the store itself may be damaged "
              "(`parkgate store check`)")
        return 1
    print(f"backup {dest} ({dest.stat().st_size} bytes), checked OK")
    if not args.out and args.keep > 0:
        _prune(folder, store, args.keep)
    return 0


def _prune(folder: Path, store: Path, keep: int) -> None:
    try:
        for old in integrity.prune_backups(folder, store, keep):
            print(f"deleted the older backup {old} (--keep {keep})")
    except OSError as exc:  # the new backup is good: a failed clean-up is a warning
        print(f"warning: older backups in {folder} not pruned: {exc}")


def _owner_refusal(store: Path) -> str | None:
    """Why this user must not write the store's files (None: go ahead). Root gives every new file the
    store's owner, group and mode; another user would leave files the daemon's user cannot write."""
    owner = owner_of(store).st_uid
    if os.geteuid() in (0, owner):
        return None
    return (f"{store} belongs to uid {owner}; run this as that user (sudo -u parkgate parkgate store ...) "
            "so that the daemon can write the recovered store")


def _give_to_owner(path: Path, like: os.stat_result, mode: int) -> None:
    """``path`` to ``like``'s owner and group (as root; another user's files are already its own), then
    ``mode``."""
    if os.geteuid() == 0:
        os.chown(path, like.st_uid, like.st_gid)
    os.chmod(path, mode)


def _space_hint(exc: BaseException, where: Path) -> str:
    full = getattr(exc, "errno", None) == errno.ENOSPC or "full" in str(exc)
    return f" (free space on the file system of {where.parent}, then run it again)" if full else ""


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
    if not store.parent.is_dir():
        print(f"no state directory {store.parent} (gateway.state_dir / store.path): check the config")
        return 1
    refusal = _owner_refusal(store)
    if refusal:
        print(f"cannot recover: {refusal}")
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
    from edge.store import Store, StoreError  # sqlite-utils: only when salvaging

    like = store.stat()
    mode = stat.S_IMODE(like.st_mode)

    def create_schema(path: Path) -> None:
        Store(path).close()
        integrity.marker_path(path).unlink(missing_ok=True)
        _give_to_owner(path, like, mode)  # SQLite gives root's journal files the database's owner

    new = integrity.aside_name(store, "salvage")
    try:
        results = integrity.salvage(store, new, create_schema)
        integrity.fsync_file(new)
    except (OSError, sqlite3.Error, StoreError) as exc:
        _clear(new)
        print(f"salvage of {store} failed: {exc}; {store} is unchanged{_space_hint(exc, store)}")
        return 1
    for result in results:
        print(f"  {result.table}: {result.copied} rows copied" + (f"; {result.lost}" if result.lost else ""))
    try:
        aside = integrity.replace_store(store, new, "damaged")
    except OSError as exc:
        _clear(new)
        print(f"cannot put the salvaged store in place of {store}: {exc}; {store} is unchanged")
        return 1
    lost = [r.table for r in results if r.lost]
    print(f"recovered {store} ({'some rows lost in: ' + ', '.join(lost) if lost else 'every row read'}); "
          f"the damaged file is kept as {aside}")
    return 0


def _clear(new: Path) -> None:
    integrity.remove_store_files(new)
    integrity.marker_path(new).unlink(missing_ok=True)


def _restore(backup: Path, store: Path) -> int:
    report = integrity.check(backup)
    if not report.ok or not backup.exists():
        print(f"backup {backup} is not usable: {'; '.join(report.problems) or 'it does not exist'}")
        return 1
    like = owner_of(store)
    mode = stat.S_IMODE(like.st_mode) if store.exists() else 0o600
    tmp = store.with_name(store.name + ".restoring")
    try:
        integrity.copy_durably(backup, tmp, mode)  # the whole copy on disk before the store is touched
        _give_to_owner(tmp, like, mode)
        aside = integrity.replace_store(store, tmp, "replaced")
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        print(f"cannot restore {store} from {backup}: {exc}; {store} is unchanged{_space_hint(exc, store)}")
        return 1
    print(f"restored {store} from {backup}" + (f"; the previous file is kept as {aside}" if aside else ""))
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from edge.store import Store, StoreError  # sqlite-utils: only when pruning

    cfg = load_config(args.config)  # a ConfigError: printed by edge.cli.main, exit 2
    store = cfg.store_path
    refusal = _open_refusal(store)
    if refusal:
        print(f"cannot prune: {refusal}")
        return 1
    try:
        with Store(store, busy_timeout_ms=cfg.store.busy_timeout_ms) as db:
            cutoff = cfg.store.cutoff_ms(display_reading(cfg, db.clock_floor()).best_ms)
            pruned = db.prune(cutoff, dry_run=args.dry_run)
    except (sqlite3.Error, StoreError) as exc:
        print(f"prune of {store} failed: {exc}; the batches done before are deleted, the rest is kept"
              f"{_space_hint(exc, store)}")
        return 1
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(cutoff / 1000))
    days = cfg.store.retention_days
    print(f"store retention: {days} days ([store] retention_days): rows older than {when}")
    print(f"{'would delete' if args.dry_run else 'deleted'} {pruned.summary()}")
    print(f"kept {pruned.kept} gate event(s) older than that: undelivered (see `parkgate chain status`, "
          "`parkgate status`; rejected or dead: `parkgate store outbox`), dropped after it, a "
          "vehicle still inside, or a booking not settled")
    return 0


def _open_refusal(store: Path) -> str | None:
    """Why this command must not open ``store`` (None: go ahead)."""
    return (integrity.preflight(store) or _owner_refusal(store)
            or (None if store.exists() else f"{store} does not exist"))


def _outbox_line(row: OutboxRow) -> dict[str, Any]:
    """The fields `parkgate store outbox` shows of a row; its gate event's from the payload (a dead row's
    payload may not be one: its fields are then None)."""
    event = row.payload if isinstance(row.payload, dict) else {}
    return {"id": row.id, "destination": row.destination, "state": row.status, "event_id": row.event_id,
            "occurred_at_ms": event.get("occurred_at_ms"), "lane": event.get("lane"),
            "kind": event.get("kind"), "attempts": row.attempts, "last_error": row.last_error,
            "operator_actions": [asdict(action) for action in row.operator_actions]}


def _print_rows(rows: list[OutboxRow], as_json: bool) -> None:
    from edge.cli.lists import show_time

    for row in rows:
        line = _outbox_line(row)
        if as_json:
            print(json.dumps(line))
            continue
        when = show_time(line["occurred_at_ms"]) if isinstance(line["occurred_at_ms"], int) else "-"
        print(f"{row.id:>6}  {row.destination:<5} {row.status:<8} {row.event_id}  {when}  "
              f"{line['lane'] or '-'}  {line['kind'] or '-'}  {row.last_error or '-'}")
        for action in row.operator_actions:
            print(f"{'':>8}{show_time(action.at_ms)}  {action.who}; was {action.was}")


def cmd_outbox(args: argparse.Namespace) -> int:
    from edge.store import Store, StoreError  # sqlite-utils: only when reading

    cfg = load_config(args.config)  # a ConfigError: printed by edge.cli.main, exit 2
    refusal = _open_refusal(cfg.store_path)
    if refusal:
        print(f"cannot read the outbox: {refusal}", file=sys.stderr)
        return 1
    try:
        with Store(cfg.store_path, busy_timeout_ms=cfg.store.busy_timeout_ms) as db:
            rows = (db.acted_outbox if args.acted else db.given_up_outbox)(args.destination, args.state)
    except (sqlite3.Error, StoreError) as exc:
        print(f"cannot read the outbox of {cfg.store_path}: {exc}", file=sys.stderr)
        return 1
    _print_rows(rows, args.json)
    if not args.json:
        states = [args.state] if args.state else []
        which = (" ".join([*states, "operator-handled"]) if args.acted
                 else " or ".join(states or OUTBOX_GIVEN_UP))
        where = f" for {args.destination}" if args.destination else ""
        print(f"{len(rows)} {which} outbox row(s){where}" if rows else f"no {which} outbox rows{where}")
    return 0


def _selection(args: argparse.Namespace, verb: str) -> str | None:
    """What is wrong with the rows asked for (None: one way of naming them was given). The list's filters
    (--destination, --state, before the action) do not choose rows to change: they are refused."""
    filters = [f"{flag} {value}" for flag, value in (("--destination", args.destination),
                                                     ("--state", args.state)) if value]
    if filters:
        return (f"{' and '.join(filters)} only filter the list (`parkgate store outbox`), never the rows to "
                f"{verb}; allowed: name them by outbox id or with --all-rejected"
                + (" / --all-dead" if verb == "drop" else ""))
    flags = ["--all-rejected", "--all-dead"] if verb == "drop" else ["--all-rejected"]
    given = [bool(args.ids), args.all_rejected, getattr(args, "all_dead", False)]
    if sum(given) == 1:
        return None
    ways = ["outbox ids (ID [ID ...])", *flags]
    return (f"name the rows to {verb} one way: {', '.join(ways[:-1])} or {ways[-1]} "
            f"(given: {'none' if not any(given) else 'more than one'})")


def cmd_outbox_drop(args: argparse.Namespace) -> int:
    return _outbox_action(args, "drop")


def cmd_outbox_retry(args: argparse.Namespace) -> int:
    return _outbox_action(args, "retry")


def _outbox_action(args: argparse.Namespace, verb: str) -> int:
    """`store outbox drop|retry`: the rows named, checked and changed by one store method in one
    transaction (``Store.drop_outbox``, ``Store.retry_rejected_outbox``)."""
    from edge.store import Store, StoreError  # sqlite-utils: only when changing rows

    present, past = _PRESENT[verb], _past(verb)
    problem = _selection(args, verb)
    if not args.by.strip():
        problem = f"--by is empty; allowed: who {present} them, e.g. --by alice"
    if problem:
        print(f"parkgate store outbox {verb}: {problem}", file=sys.stderr)
        return 2
    cfg = load_config(args.config)  # a ConfigError: printed by edge.cli.main, exit 2
    refusal = _open_refusal(cfg.store_path)
    if refusal:
        print(f"cannot {verb}: {refusal}", file=sys.stderr)
        return 1
    who = f"{past} by {args.by.strip()} ({_operator()})"
    try:
        with Store(cfg.store_path, busy_timeout_ms=cfg.store.busy_timeout_ms) as db:
            now = display_reading(cfg, db.clock_floor()).best_ms  # updated_at_ms: the best time
            db.clock = lambda: now
            if verb == "drop":
                ids = args.ids or [r.id for r in db.given_up_outbox(status=_state_of(args))]
                rows = db.drop_outbox(ids, who, dry_run=not args.yes)
            else:
                ids = args.ids or [r.id for r in db.given_up_outbox(CHAIN_DESTINATION, "rejected")]
                rows = db.retry_rejected_outbox(ids, who, dry_run=not args.yes)
    except (sqlite3.Error, StoreError) as exc:
        print(f"cannot {verb}: {exc}", file=sys.stderr)
        return 1
    return _report(rows, verb, args.yes, who)


def _operator() -> str:
    """Who runs this command: "user U", with ", sudo by S" when run through sudo (sudo -u parkgate ...)."""
    sudo = os.environ.get("SUDO_USER")
    return f"user {user_name(os.geteuid())}" + (f", sudo by {sudo}" if sudo else "")


def _past(verb: str) -> str:
    return OUTBOX_ACTIONS[verb][2]


def _state_of(args: argparse.Namespace) -> str:
    return "rejected" if args.all_rejected else "dead"


def _report(rows: list[OutboxRow], verb: str, done: bool, who: str) -> int:
    _print_rows(rows, as_json=False)
    if not rows:
        print(f"nothing to {verb}")
        return 0
    if not done:
        print(f"would {verb} {len(rows)} outbox row(s); run again with --yes to {verb} them")
        return 1
    for row in rows:  # the journal keeps what the row's own audit loses once pruned
        log.warning("outbox row %d (%s) of gate event %s %s; was %s: %s", row.id, row.destination,
                    row.event_id, who, row.status, row.last_error or "-")
    print(f"{_past(verb)} {len(rows)} outbox row(s) ({who}); {_AFTER[verb]}")
    return 0
