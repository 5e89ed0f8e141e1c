"""`parkgate console ...`: the operators' web console and its users.

    parkgate console serve [--config FILE]                    run it (systemd: parkgate-console.service)
    parkgate console user add NAME --role operator|viewer    the password is read from stdin (asked on a tty)
    parkgate console user remove NAME
    parkgate console user list

The console runs beside `parkgate run`, as the same user (it reads the daemon's status and store and
talks to its control socket). It is off until ``[console] enabled = true``; it listens on 127.0.0.1 unless
``[console] host`` says otherwise, and serves HTTPS when ``cert_file`` and ``key_file`` are given. It
answers only requests for localhost, 127.0.0.1, ::1, a specific ``host`` and ``[console] allowed_hosts``.
There is no default user: add one first. Run the user commands as the daemon's user (``sudo -u parkgate``).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from edge.config import ConfigError, load_config

CONFIG_HELP = "config file (default: /etc/parkgate/parkgate.toml if present, else the built-in defaults)"
ROLES = ("operator", "viewer")


def register(sub: argparse._SubParsersAction) -> None:
    console = sub.add_parser("console", help="the operators' web console (serve it, manage its users)",
                             description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = console.add_subparsers(dest="console_command", metavar="ACTION", required=True)
    serve = actions.add_parser("serve", help="run the console in the foreground (needs [console] enabled)")
    serve.set_defaults(func=cmd_serve)
    user = actions.add_parser("user", help="console users: add, remove, list")
    user_actions = user.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    add = user_actions.add_parser("add", help="add a user (or set a user's role and password)")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, required=True, help="operator: acts; viewer: read-only")
    add.set_defaults(func=cmd_user_add)
    remove = user_actions.add_parser("remove", help="remove a user")
    remove.add_argument("name")
    remove.set_defaults(func=cmd_user_remove)
    show = user_actions.add_parser("list", help="the users and their roles")
    show.set_defaults(func=cmd_user_list)
    for p in (serve, add, remove, show):
        p.add_argument("--config", metavar="FILE", default=None, help=CONFIG_HELP)


def writable_users_file(state_dir: Path) -> Path:
    """The users file, written only by the state dir's owner (the daemon's user): a root-owned 0600 file
    would lock the console out. ValueError naming the fix otherwise."""
    from edge.console.users import users_path

    if not state_dir.is_dir():
        raise ValueError(f"no state directory {state_dir} (gateway.state_dir); has parkgate run once?")
    owner = state_dir.stat().st_uid
    if os.geteuid() != owner:
        raise ValueError(f"{state_dir} belongs to uid {owner}; run this as that user (sudo -u parkgate "
                         "parkgate console user ...) so the console can read its users file")
    return users_path(state_dir)


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise ValueError("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\n")


def cmd_user_add(args: argparse.Namespace) -> int:
    from edge.console.users import UsersError, add_user, check_name

    try:
        cfg = load_config(args.config)
        check_name(args.name)
        path = writable_users_file(cfg.gateway.state_dir)
        user = add_user(path, args.name, args.role, _read_password())
    except (ConfigError, UsersError, ValueError, OSError) as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"console user {user.name} ({user.role}) saved in {path}; a running console takes it at the next "
          "login")
    return 0


def cmd_user_remove(args: argparse.Namespace) -> int:
    from edge.console.users import UsersError, remove_user

    try:
        cfg = load_config(args.config)
        removed = remove_user(writable_users_file(cfg.gateway.state_dir), args.name)
    except (ConfigError, UsersError, ValueError, OSError) as exc:
        print(exc, file=sys.stderr)
        return 1
    if not removed:
        print(f"no console user {args.name!r}", file=sys.stderr)
        return 1
    print(f"console user {args.name} removed; a running console ends their sessions at their next request")
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    from edge.console.users import UsersError, load_users, users_path

    try:
        cfg = load_config(args.config)
        users = load_users(users_path(cfg.gateway.state_dir))
    except (ConfigError, UsersError) as exc:
        print(exc, file=sys.stderr)
        return 1
    for user in sorted(users.values(), key=lambda u: u.name):
        print(f"{user.name:<32} {user.role}")
    print(f"{len(users)} console user(s)")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from edge.console.app import build_app
    except ImportError as exc:
        print(f"the console needs the console extra ({exc.name} is missing): pip install 'parkgate[console]'",
              file=sys.stderr)
        return 1
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    c = cfg.console
    if not c.enabled:
        print(f"the console is off: set [console] enabled = true in {cfg.source}", file=sys.stderr)
        return 1
    from edge.console.users import UsersError, load_users, users_path

    try:
        if not load_users(users_path(cfg.gateway.state_dir)):
            print("no console users yet: every login is refused until one is added (sudo -u parkgate "
                  "parkgate console user add NAME --role operator)", file=sys.stderr)
    except UsersError as exc:
        print(exc, file=sys.stderr)
        return 1
    from edge.console.hosts import host_warning

    if warning := host_warning(c):
        print(f"WARNING: {warning}", file=sys.stderr, flush=True)
    scheme = "https" if c.cert_file else "http"
    server = uvicorn.Server(uvicorn.Config(
        build_app(cfg), host=c.host, port=c.port, log_level="warning", access_log=False,
        # uvicorn believes X-Forwarded-For/-Proto from 127.0.0.1 by default: on loopback every client
        # (the ssh tunnel, any local process) could then name its own address. Only configured proxies.
        proxy_headers=bool(c.trusted_proxies), forwarded_allow_ips=list(c.trusted_proxies) or None,
        ssl_certfile=str(c.cert_file) if c.cert_file else None,
        ssl_keyfile=str(c.key_file) if c.key_file else None))
    print(f"CONSOLE {scheme}://{c.host}:{c.port}/ (gateway {cfg.gateway.id})", flush=True)
    server.run()
    return 0 if server.started else 1
