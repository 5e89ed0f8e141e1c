"""`parkgate demo`: the end-to-end demo (local chain, gate emulators, recorded cameras, the daemon)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="run a short day at a demo garage end to end; exit 0 only if every "
                          "expectation held")
    demo.add_argument("--workdir", type=Path, default=None,
                      help="where logs, the store and the report go (default: a new temporary directory)")
    demo.add_argument("--mqtt", metavar="URL", default=None,
                      help="also publish to this broker, e.g. mqtts://user:pass@host:8883")
    demo.add_argument("--mqtt-ca", type=Path, default=None, help="CA file of the broker's certificate "
                      "(default: the system CA store)")
    demo.add_argument("--models", type=Path, default=None,
                      help="a directory with plate_detector.onnx, plate_ocr.onnx, plate_ocr.yaml to use "
                      "instead of the bundled models")
    demo.add_argument("--exit", action="store_true",
                      help="stop at the end of the day (default on a terminal: the daemon and the console "
                      "stay up until Enter)")
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        from edge.tools.demo.scenario import main
    except ImportError:  # an installed gateway: the demo comes with the repository only
        print("parkgate demo: the demo is a development tool; run it from the repository (make demo)")
        return 2
    return main(args.workdir, args.mqtt, args.models, args.mqtt_ca, exit_at_end=args.exit)
