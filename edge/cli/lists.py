"""`parkgate list allow|deny add|remove|show` and `parkgate booking add|show|cancel`: the lot's lists and
offline bookings, changed in the store while the daemon runs (it reads them before each decision, so a
change applies from the next car, without a restart).

    parkgate list allow add AB-123-CD --until 2026-12-24T18:00 --note "plumber" [--config FILE]
    parkgate list deny add 0x<commitment>
    parkgate list deny remove AB-123-CD
    parkgate list allow show [--json]
    parkgate booking add --plate AB-123-CD --from 2026-12-24T08:00 --until 2026-12-24T18:00
    parkgate booking show [--json]
    parkgate booking cancel local-01J...

An entry is a plate (kept on this device only) or a vehicle commitment (0x + 64 hex digits). Times are
ISO 8601 (``2026-12-24`` or ``2026-12-24T18:00``, local time unless an offset is given). Run these as the
store's owner (``sudo -u parkgate parkgate ...``): a root-owned SQLite journal would lock the daemon out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from edge.clock import parse_local_time
from edge.config import Config, ConfigError, load_config
from edge.daemon.status import clock_behind_note, display_reading
from edge.identity import list_entry_key, mask_plate, normalise_plate
from edge.store import Booking, ListEntry, RentalEvent, Store, StoreError, new_event_id
from edge.store.rows import list_time_problem
from edge.store.schema import ACCESS_LISTS
from edge.store.store import owner_of

CONFIG_HELP = "config file (default: /etc/parkgate/parkgate.toml if present, else the built-in defaults)"
LOCAL_PREFIX = "local-"  # ids of bookings made here, never a chain id (decimal)
NO_ADDRESS = "0x" + "0" * 40
NO_HASH = "0x" + "0" * 64
MAX_NOTE_CHARS = 200


class CliError(Exception):
    """A user error: printed as is, exit status 1."""


def register(sub: argparse._SubParsersAction) -> None:
    lists = sub.add_parser("list", help="allow and deny lists, changed live (no restart)")
    which = lists.add_subparsers(dest="list_name", metavar="LIST", required=True)
    for name in ACCESS_LISTS:
        p = which.add_parser(name, help=f"the {name} list")
        actions = p.add_subparsers(dest="list_action", metavar="ACTION", required=True)
        add = actions.add_parser("add", help=f"add an entry (or change its validity) to the {name} list")
        add.add_argument("entry", help="a plate (stays on this device) or a 0x vehicle commitment")
        add.add_argument("--from", dest="valid_from", metavar="TIME",
                         help="valid from (ISO 8601, 2000-01-01 .. 2100-01-01; default: at once)")
        add.add_argument("--until", dest="valid_until", metavar="TIME",
                         help="valid until (ISO 8601, 2000-01-01 .. 2100-01-01; default: no end)")
        add.add_argument("--note", default="", help="why, for whom (shown by show)")
        remove = actions.add_parser("remove", help=f"remove an entry from the {name} list")
        remove.add_argument("entry")
        show = actions.add_parser("show", help=f"the {name} list: the config's entries and the store's")
        show.add_argument("--json", action="store_true", help="machine-readable output")
        for action, func in ((add, cmd_list_add), (remove, cmd_list_remove), (show, cmd_list_show)):
            action.add_argument("--config", metavar="FILE", default=None, help=CONFIG_HELP)
            action.set_defaults(func=_guarded(func))

    booking = sub.add_parser("booking", help="bookings made on this gateway (offline lots without a chain)")
    actions = booking.add_subparsers(dest="booking_action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="book a vehicle for a time window at this lot")
    add.add_argument("--plate", required=True, help="the vehicle's plate (stored only as its commitment)")
    add.add_argument("--from", dest="valid_from", metavar="TIME", required=True,
                     help="window start (ISO 8601)")
    add.add_argument("--until", dest="valid_until", metavar="TIME", required=True,
                     help="window end (ISO 8601)")
    show = actions.add_parser("show", help="bookings made here")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    cancel = actions.add_parser("cancel", help="cancel a booking made here")
    cancel.add_argument("booking_id", help="the id `booking add` printed (local-...)")
    for action, func in ((add, cmd_booking_add), (show, cmd_booking_show), (cancel, cmd_booking_cancel)):
        action.add_argument("--config", metavar="FILE", default=None, help=CONFIG_HELP)
        action.set_defaults(func=_guarded(func))


def _guarded(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """The command, with user errors (bad entry, time, config, store) printed instead of raised."""
    def run(args: argparse.Namespace) -> int:
        try:
            return int(func(args))
        except (CliError, ConfigError, StoreError) as exc:
            print(exc, file=sys.stderr)
            return 1
    return run


# -- shared -------------------------------------------------------------------------------------------

def parse_time_option(text: str | None, name: str) -> int | None:
    """A time option (``edge.clock.parse_local_time``) -> unix ms, or None; a bad one is a CliError."""
    try:
        return parse_local_time(text, name)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def show_time(ms: int | None) -> str:
    """Local time; one the platform cannot show (year 10000) as its raw unix ms, never a traceback."""
    if ms is None:
        return "-"
    try:
        return datetime.fromtimestamp(ms / 1000).isoformat(timespec="minutes")
    except (ValueError, OverflowError, OSError):
        return f"{ms} (unix ms)"


def open_store(cfg: Config) -> Store:
    """The daemon's store, opened as its owner only: another user's (root's) WAL files would lock the
    daemon out of its own store."""
    path = cfg.store_path
    if not path.parent.is_dir():
        raise CliError(f"no state directory {path.parent} (gateway.state_dir); has parkgate run once?")
    owner = owner_of(path).st_uid
    if os.geteuid() != owner:
        raise CliError(f"{path} belongs to uid {owner}; run this as that user (sudo -u parkgate "
                       "parkgate ...) so the store's journal files stay the daemon's")
    return Store(path, busy_timeout_ms=cfg.store.busy_timeout_ms)


def _entry(text: str) -> str:
    try:
        return list_entry_key(text)
    except ValueError as exc:
        raise CliError(f"entry: {exc}") from None


# -- lists ----------------------------------------------------------------------------------------------

def cmd_list_add(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    valid_from = parse_time_option(args.valid_from, "--from")
    valid_until = parse_time_option(args.valid_until, "--until")
    bounds = (("--from", args.valid_from, valid_from), ("--until", args.valid_until, valid_until))
    for name, text, ms in bounds:
        if problem := list_time_problem(ms):
            raise CliError(f"{name} {text!r} {problem}")
    if len(args.note) > MAX_NOTE_CHARS:
        raise CliError(f"--note has {len(args.note)} characters; allowed: at most {MAX_NOTE_CHARS}")
    try:
        entry = ListEntry(args.list_name, _entry(args.entry), valid_from, valid_until, args.note, "cli")
    except ValueError as exc:
        raise CliError(str(exc).replace("ListEntry.valid_until_ms", "--until")) from None
    with open_store(cfg) as store:
        store.put_list_entry(entry)
    print(f"{args.list_name} list: {_shown(entry.entry)} valid {show_time(valid_from)} .. "
          f"{show_time(valid_until)}; applies from the next vehicle")
    return 0


def cmd_list_remove(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    entry = _entry(args.entry)
    with open_store(cfg) as store:
        removed = store.remove_list_entry(args.list_name, entry)
    if not removed:
        in_config = entry in {list_entry_key(e) for e in _config_list(cfg, args.list_name)}
        where = f" (it is in the config file: edit policy.{args.list_name}_list there)" if in_config else ""
        raise CliError(f"{args.list_name} list: no stored entry {_shown(entry)}{where}")
    print(f"{args.list_name} list: removed {_shown(entry)}; applies from the next vehicle")
    return 0


def cmd_list_show(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    with open_store(cfg) as store:
        stored = store.list_entries(args.list_name)
        floor = store.clock_floor()
    reading = display_reading(cfg, floor)
    now, note = reading.best_ms, clock_behind_note(reading)
    rows = [{"entry": list_entry_key(e), "source": "config", "valid_from": None, "valid_until": None,
             "note": "", "state": "active"} for e in _config_list(cfg, args.list_name)]
    rows += [{"entry": e.entry, "source": e.source,
              "valid_from": None if e.valid_from_ms is None else show_time(e.valid_from_ms),
              "valid_until": None if e.valid_until_ms is None else show_time(e.valid_until_ms),
              "note": e.note, "state": e.state_at(now)} for e in stored]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            validity = f"{row['valid_from'] or '-'} .. {row['valid_until'] or '-'}"
            print(f"{row['entry']:<20} {row['state']:<8} {validity:<35} {row['source']:<8} {row['note']}")
        print(f"{len(rows)} entries ({sum(r['state'] == 'active' for r in rows)} active)")
    if note:
        print(note, file=sys.stderr if args.json else sys.stdout)  # --json: stdout stays JSON
    return 0


def _config_list(cfg: Config, name: str) -> tuple[str, ...]:
    return cfg.policy.allow_list if name == "allow" else cfg.policy.deny_list


def _shown(entry: str) -> str:
    """An entry in the CLI's own confirmations: a commitment shortened, a plate as given."""
    return entry[:10] + "..." if entry.startswith("0x") else entry


# -- offline bookings -------------------------------------------------------------------------------

def _offline_only(cfg: Config) -> None:
    if cfg.chain.enabled:
        raise CliError("chain.enabled is true: this lot's bookings come from the rental contract (a booking "
                       "made here would be refused on chain); use the allow list for a local exception")


def cmd_booking_add(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    _offline_only(cfg)
    start, end = parse_time_option(args.valid_from, "--from"), parse_time_option(args.valid_until, "--until")
    assert start is not None and end is not None  # both required by the parser
    if end <= start:
        raise CliError("--until must be after --from")
    try:
        plate = normalise_plate(args.plate)
    except ValueError as exc:
        raise CliError(f"--plate: {exc}") from None
    from edge.access.decide import commitment_function
    from edge.daemon.service import lot_code_of, plate_key

    commitment = commitment_function(plate_key(cfg), lot_code_of(cfg))(plate)
    booking_id = LOCAL_PREFIX + new_event_id()
    lot = cfg.gateway.lot_id
    with open_store(cfg) as store:
        space = LOCAL_PREFIX + "space"
        store.upsert_rental_event(RentalEvent(booking_id, space, lot, NO_ADDRESS, start, end, 0, "booked", 0,
                                              NO_HASH, 0))
        store.upsert_booking(Booking(booking_id, booking_id, space, lot, NO_ADDRESS, commitment, start, end,
                                     "requested", 0, NO_HASH, 0))
    print(f"{booking_id}: {mask_plate(plate)} at {lot} from {show_time(start)} until {show_time(end)}")
    return 0


def cmd_booking_show(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    with open_store(cfg) as store:
        reading = display_reading(cfg, store.clock_floor())
        # current and future ones: a window starting at any time from now on still holds
        upcoming = store.active_bookings(cfg.gateway.lot_id, reading.best_ms, grace_before_ms=2**53)
        bookings = [b for b in upcoming if b.booking_id.startswith(LOCAL_PREFIX)]
    note = clock_behind_note(reading)
    rows = [{"booking_id": b.booking_id, "from": show_time(b.window_start_ms),
             "until": show_time(b.window_end_ms), "status": b.status,
             "vehicle_commitment": b.vehicle_commitment} for b in bookings]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(f"{row['booking_id']}  {row['from']} .. {row['until']}  {row['status']}")
        print(f"{len(rows)} bookings made here")
    if note:
        print(note, file=sys.stderr if args.json else sys.stdout)  # --json: stdout stays JSON
    return 0



def cmd_booking_cancel(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    if not args.booking_id.startswith(LOCAL_PREFIX):
        raise CliError(f"{args.booking_id!r} was not made here (local booking ids start with {LOCAL_PREFIX})")
    with open_store(cfg) as store:
        booking = store.booking(args.booking_id)
        if booking is None:
            raise CliError(f"no booking {args.booking_id}")
        store.upsert_booking(replace(booking, status="cancelled"))
    print(f"{args.booking_id}: cancelled")
    return 0

