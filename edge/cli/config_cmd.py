"""`parkgate config check FILE` and `parkgate doctor [--config FILE]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.config import ConfigError, load_config, summary
from edge.doctor import (
    CREDENTIALS_SOURCE,
    CheckResult,
    Status,
    format_table,
    registered_checks,
    run_checks,
    with_credentials_dir,
)


def register(sub: argparse._SubParsersAction) -> None:
    config = sub.add_parser("config", help="work with the configuration file")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = config_sub.add_parser("check", help="validate a config file: OK and a summary, or every error")
    check.add_argument("file", help="the TOML file to check, e.g. /etc/parkgate/parkgate.toml")
    check.set_defaults(func=cmd_config_check)

    doctor = sub.add_parser(
        "doctor", help="check the installation: config, state dir, store, secrets, models, keystore, chain "
        "node and gateway, broker, gate controllers, cameras",
        description="Each check talks to the real part (RPC node, broker, serial controller, camera) with a "
        "short timeout; every FAIL comes with its fix. Exit status 1 when a check fails.")
    doctor.add_argument("--config", metavar="FILE", default=None,
                        help="config file (default: /etc/parkgate/parkgate.toml if present, "
                        "else the built-in defaults)")
    doctor.add_argument("--credentials-dir", metavar="DIR", type=Path, default=None,
                        help="read secrets named /run/credentials/parkgate.service/NAME from DIR/NAME "
                        f"instead (e.g. {CREDENTIALS_SOURCE}, the unit's LoadCredential= sources): checks a "
                        "systemd install before the unit starts")
    doctor.set_defaults(func=cmd_doctor)


def cmd_config_check(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.file)
    except ConfigError as exc:
        print(exc)
        return 1
    print(f"OK {cfg.source}")
    for line in summary(cfg):
        print(f"  {line}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        fix = "fix the listed keys (see docs/parkgate.example.toml)"
        rows = [("config", CheckResult.fail(str(exc), fix))]
        rows += [(name, CheckResult.skip("needs a valid config")) for name in registered_checks()]
    else:
        if args.credentials_dir is not None:
            cfg = with_credentials_dir(cfg, args.credentials_dir)
        rows = [("config", CheckResult.ok(cfg.source)), *run_checks(cfg)]
    print(format_table(rows))
    failed = sum(r.status is Status.FAIL for _, r in rows)
    print(f"\n{len(rows) - failed} of {len(rows)} checks passed or skipped; {failed} failed")
    return 1 if failed else 0
