"""`parkgate gate ...`: installer tools for gate controllers, and (from the repository) the hardware
emulators: ``edge.tools`` is not in the gateway's wheel, so an installed gateway has no ``emulate``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from firmware_bridge.client import GateTimeout
from firmware_bridge.driver import connect_driver
from firmware_bridge.gate import DRIVER_NAMES, GateDriver, GateRefused, GateStatus, InputChange
from firmware_bridge.messages import EventKind, Fault, Position
from firmware_bridge.transport import PortUnavailable

try:
    from edge.tools.emulator import server as emulator_server
except ImportError:  # an installed gateway: the emulators come with the repository only
    emulator_server = None  # type: ignore[assignment]


def register(sub: argparse._SubParsersAction) -> None:
    gate = sub.add_parser("gate", help="talk to a gate controller on a serial port, or emulate one")
    actions = gate.add_subparsers(dest="gate_command", metavar="ACTION", required=True)

    if emulator_server is not None:
        emulate = actions.add_parser("emulate", help="run a gate-controller emulator on a pseudo-terminal",
                                     description=emulator_server.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
        emulator_server.add_arguments(emulate)
        emulate.set_defaults(func=cmd_emulate)

    for name, func, text in (("status", cmd_status, "print the gate's position, loops and faults"),
                             ("open", cmd_open, "open the gate with a hardware-timed pulse"),
                             ("watch", cmd_watch, "print input events until Ctrl-C")):
        p = actions.add_parser(name, help=text)
        p.add_argument("--port", required=True, help="serial device, e.g. /dev/ttyUSB0")
        p.add_argument("--baud", type=int, default=115200)
        p.add_argument("--driver", choices=DRIVER_NAMES, default="parkgate-serial")
        if name == "open":
            p.add_argument("--pulse-ms", type=int, default=1000, help="open pulse length (50..30000 ms)")
        if name == "watch":
            p.add_argument("--seconds", type=float, default=None, help="stop after this long")
        p.set_defaults(func=func)


def cmd_emulate(args: argparse.Namespace) -> int:
    assert emulator_server is not None
    return emulator_server.main(emulator_server.config_from_args(args))


def format_status(status: GateStatus) -> str:
    faults = ",".join(f.name for f in type(status.faults) if f and f in status.faults and f.name) or "none"
    opens = "n/a" if status.opens is None else str(status.opens)
    return (f"position={status.position.name} presence={int(status.presence)} safety={int(status.safety)} "
            f"held={int(status.held)} faults={faults} opens={opens}")


def format_event(event: InputChange) -> str:
    value: object = event.value
    if event.kind is EventKind.POSITION:
        value = Position(event.value).name
    elif event.kind is EventKind.FAULT:
        value = ",".join(f.name for f in Fault if f and f in Fault(event.value) and f.name) or "none"
    return f"{event.kind.name.lower()} {value}"


def _run(args: argparse.Namespace, action) -> int:  # noqa: ANN001 - async callable taking a driver
    async def go() -> None:
        driver: GateDriver = await connect_driver(args.driver, args.port, args.baud)
        try:
            await action(driver)
        finally:
            await driver.aclose()

    try:
        asyncio.run(go())
    except (PortUnavailable, GateTimeout, GateRefused, ConnectionError, ValueError) as exc:
        print(f"parkgate gate {args.gate_command}: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, PortUnavailable) else 1
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    async def action(driver: GateDriver) -> None:
        print(format_status(await driver.status()))

    return _run(args, action)


def cmd_open(args: argparse.Namespace) -> int:
    async def action(driver: GateDriver) -> None:
        await driver.open_pulse(args.pulse_ms)
        print(f"opened: pulse {args.pulse_ms} ms acknowledged")

    return _run(args, action)


def cmd_watch(args: argparse.Namespace) -> int:
    async def action(driver: GateDriver) -> None:
        async def stream() -> None:
            async for event in driver.events():
                print(format_event(event), flush=True)

        streaming = asyncio.create_task(stream())
        await asyncio.sleep(0.01)  # subscribed before the snapshot, so no change falls in between
        print(format_status(await driver.status()), flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(streaming, args.seconds)

    return _run(args, action)
