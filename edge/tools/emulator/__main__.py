"""`python -m edge.tools.emulator`: the same emulator as `parkgate gate emulate`, without the CLI."""

from __future__ import annotations

import argparse

from edge.tools.emulator import server


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.tools.emulator", description=server.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    server.add_arguments(parser)
    return server.main(server.config_from_args(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
