"""The `parkgate` command line.

Each concern registers its own subcommands from a module listed in COMMAND_MODULES; a module exposes
``register(subparsers)`` and sets ``func`` (taking the parsed namespace, returning an exit code) on
each parser it adds. Keeping the list here makes the whole command surface visible in one place.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from edge import __version__
from edge.config import ConfigError

COMMAND_MODULES: tuple[str, ...] = (
    "edge.cli.basics",
    "edge.cli.config_cmd",
    "edge.cli.gate",
    "edge.cli.mqtt",
    "edge.cli.lpr",
    "edge.cli.chain",
    "edge.cli.lists",
    "edge.cli.events",
    "edge.cli.run",
    "edge.cli.store",
    "edge.cli.demo",
    "edge.cli.lot",
    "edge.cli.booking",
    "edge.cli.console",
)

EPILOG = """\
Typical use at a new installation:
  parkgate config check /etc/parkgate/parkgate.toml   validate the config before starting
  parkgate doctor                                     check config, store, serial, camera, chain, broker
  parkgate run                                        start the gateway daemon (systemd does this)

Run `parkgate COMMAND --help` for the options of one command.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="parkgate",
        description="Edge gateway for parking-lot gates: plate recognition, offline access decisions, "
        "gate control over serial, and rental-contract sync.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("--version", action="version", version=f"parkgate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except ConfigError as exc:  # a command that does not handle its own: the issues, exit 2
        print(exc)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
