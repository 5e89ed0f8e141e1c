"""`parkgate version`."""

from __future__ import annotations

import argparse
import platform

from edge import __version__


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("version", help="print the parkgate version and runtime versions")
    p.set_defaults(func=cmd_version)


def cmd_version(args: argparse.Namespace) -> int:
    print(f"parkgate {__version__} (Python {platform.python_version()}, {platform.machine()})")
    return 0
