"""`parkgate gate ...`: operate and test gates; and (from the repository) the hardware emulators:
``edge.tools`` is not in the gateway's wheel, so an installed gateway has no ``emulate``.

Two ways to reach a gate:
- ``--lane L`` (with ``--config``): while the daemon runs, through its control socket (it holds the
  serial ports): ``open``/``hold``/``release`` are audited with ``--reason`` and the caller's user;
  ``watch`` and ``status`` can run beside them. With no daemon running, ``status``/``open``/``watch``
  talk to the lane's port directly with the lane's driver, baud rate and Modbus wiring.
- ``--port P`` (``--driver``, ``--baud``, ``--unit``/``--coil`` for Modbus): directly, for
  installers before the daemon runs."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge.config import ConfigError, GateConfig, LaneConfig, load_config, relay_map_options
from edge.daemon import control
from firmware_bridge.client import GateTimeout
from firmware_bridge.driver import connect_driver, fault_names
from firmware_bridge.gate import DRIVER_NAMES, GateDriver, GateRefused, GateStatus, InputChange
from firmware_bridge.messages import EventKind, Fault, Position
from firmware_bridge.relaymap import RelayMap
from firmware_bridge.transport import PortUnavailable

try:
    from edge.tools.emulator import server as emulator_server
except ImportError:  # an installed gateway: the emulators come with the repository only
    emulator_server = None  # type: ignore[assignment]

CONFIG_HELP = "config file (default: /etc/parkgate/parkgate.toml if present, else the built-in defaults)"
ACTIONS = (("status", "print the gate's position, loops and faults"),
           ("open", "open the gate with a hardware-timed pulse"),
           ("hold", "hold the gate open until `release` (needs the running daemon)"),
           ("release", "end a hold; the gate closes once its loops are clear (needs the running daemon)"),
           ("watch", "print input changes with timestamps until Ctrl-C"))


def register(sub: argparse._SubParsersAction) -> None:
    gate = sub.add_parser("gate", help="operate and test gates (through the daemon or a serial port)",
                          description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = gate.add_subparsers(dest="gate_command", metavar="ACTION", required=True)

    if emulator_server is not None:
        emulate = actions.add_parser("emulate", help="run a gate-controller emulator on a pseudo-terminal",
                                     description=emulator_server.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
        emulator_server.add_arguments(emulate)
        emulate.set_defaults(func=cmd_emulate)

    for name, text in ACTIONS:
        p = actions.add_parser(name, help=text)
        where = p.add_mutually_exclusive_group(required=True)
        where.add_argument("--lane", help="the lane's name in the config (through the daemon if it runs)")
        where.add_argument("--port", help="serial device, e.g. /dev/ttyUSB0 (direct, no daemon)")
        p.add_argument("--config", metavar="FILE", default=None, help=CONFIG_HELP)
        p.add_argument("--reason", default="", help="why (required through the daemon: it is audited)")
        p.add_argument("--driver", choices=DRIVER_NAMES, default=None,
                       help="with --port (default parkgate-serial); with --lane: the lane's")
        p.add_argument("--baud", type=int, default=None, help=f"default: the lane's baudrate, else "
                       f"{GateConfig().baudrate} (the config default)")
        p.add_argument("--unit", type=int, default=None, help="modbus-rtu: the board's unit id (default 1)")
        p.add_argument("--coil", type=int, default=None, help="modbus-rtu: the relay that opens (default 0)")
        if name == "open":
            p.add_argument("--pulse-ms", type=int, default=None,
                           help="direct: pulse length 50..30000 ms (default: the lane's pulse_ms, else 1000)")
        if name == "watch":
            p.add_argument("--seconds", type=float, default=None, help="stop after this long")
        p.set_defaults(func=cmd_gate)


def cmd_emulate(args: argparse.Namespace) -> int:
    assert emulator_server is not None
    return emulator_server.main(emulator_server.config_from_args(args))


# -- formatting ----------------------------------------------------------------------------------------

def timestamp(epoch_ms: int | None = None) -> str:
    """``2026-12-01T18:30:00.123Z`` (UTC, milliseconds)."""
    at = datetime.fromtimestamp((time.time() * 1000 if epoch_ms is None else epoch_ms) / 1000, UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def format_status(status: GateStatus) -> str:
    opens = "n/a" if status.opens is None else str(status.opens)
    return (f"position={status.position.name} presence={int(status.presence)} safety={int(status.safety)} "
            f"held={int(status.held)} faults={fault_names(status.faults)} opens={opens}")


def format_event(event: InputChange, input_no: int | None = None) -> str:
    """``presence 1 (input 4)``, ``position OPEN (3)``, ``fault MOTOR (0x01)``: names and raw numbers."""
    kind = event.kind.name.lower()
    if event.kind is EventKind.POSITION:
        return f"{kind} {Position(event.value).name} ({event.value})"
    if event.kind is EventKind.FAULT:
        return f"{kind} {fault_names(Fault(event.value))} (0x{event.value:02x})"
    return f"{kind} {event.value}" + (f" (input {input_no})" if input_no is not None else "")


def input_numbers(relay_map: RelayMap | None) -> dict[EventKind, int]:
    """The board input behind each event kind (Modbus boards), for ``watch``."""
    if relay_map is None:
        return {}
    return {EventKind.PRESENCE: relay_map.presence_input, EventKind.SAFETY: relay_map.safety_input}


def format_watched(item: dict[str, Any]) -> str:
    """One line of the daemon's ``watch`` stream."""
    at, lane = timestamp(item.get("at_ms")), item.get("lane")
    if item.get("kind") == "status":
        return (f"{at} {lane} status position={item['position']} presence={item['presence']} "
                f"safety={item['safety']} held={item['held']} faults={fault_names(Fault(item['faults']))}")
    try:
        event = InputChange(EventKind[str(item["kind"]).upper()], int(item["value"]))
    except (KeyError, ValueError):
        return f"{at} {lane} {json.dumps(item, sort_keys=True)}"
    return f"{at} {lane} {format_event(event, item.get('input'))}"


# -- the two ways to a gate ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Direct:
    """A gate reached on its serial port."""

    driver: str
    port: str
    baud: int
    options: dict[str, int] = field(default_factory=dict)
    pulse_ms: int = 1000

    @property
    def relay_map(self) -> RelayMap | None:
        return RelayMap.from_dict(self.options) if self.driver == "modbus-rtu" else None


def direct_target(args: argparse.Namespace, lane: LaneConfig | None) -> Direct:
    """The port, driver, baud rate and Modbus wiring from the options, else the lane, else defaults."""
    gate = lane.gate if lane is not None else GateConfig()
    driver = args.driver or (gate.driver if lane is not None else "parkgate-serial")
    options = relay_map_options(gate) if driver == "modbus-rtu" and lane is not None else {}
    if driver != "modbus-rtu" and (args.unit is not None or args.coil is not None):
        raise ValueError("--unit/--coil are for --driver modbus-rtu")
    if args.unit is not None:
        options["device_id"] = args.unit
    if args.coil is not None:
        options["open_relay"] = args.coil
    if driver == "modbus-rtu":
        RelayMap.from_dict(options)  # ValueError naming the bad value and its range
    pulse = getattr(args, "pulse_ms", None) or (gate.pulse_ms if lane is not None else 1000)
    return Direct(driver, args.port or gate.port, args.baud or gate.baudrate, options, pulse)


def cmd_gate(args: argparse.Namespace) -> int:
    try:
        lane, socket_path = _lane_of(args)
    except (ConfigError, ValueError) as exc:
        return _fail(args, exc)
    if socket_path is not None:
        try:
            return _through_daemon(args, socket_path)
        except control.NoDaemon as exc:
            if args.gate_command in ("hold", "release"):
                return _fail(args, f"{exc}; hold and release need the running daemon (`parkgate run`)", 2)
        except (OSError, ValueError) as exc:
            return _fail(args, exc)
    elif args.gate_command in ("hold", "release"):
        return _fail(args, "hold and release go through the running daemon: use --lane NAME", 2)
    try:
        target = direct_target(args, lane)
    except ValueError as exc:
        return _fail(args, exc)
    return _run_direct(args, target, DIRECT[args.gate_command])


def _lane_of(args: argparse.Namespace) -> tuple[LaneConfig | None, Path | None]:
    if args.lane is None:
        return None, None
    cfg = load_config(args.config)
    for lane in cfg.lanes:
        if lane.name == args.lane:
            return lane, control.socket_path(cfg.gateway.state_dir)
    names = ", ".join(x.name for x in cfg.lanes)
    raise ValueError(f"lane {args.lane!r} is not in {cfg.source}; lanes: {names}")


def _fail(args: argparse.Namespace, why: object, code: int = 1) -> int:
    print(f"parkgate gate {args.gate_command}: {why}", file=sys.stderr)
    return code


# -- through the daemon --------------------------------------------------------------------------------

def _through_daemon(args: argparse.Namespace, path: Path) -> int:
    payload = {"action": args.gate_command, "lane": args.lane}
    if args.gate_command == "watch":
        return _watch_daemon(path, payload, args.seconds)
    if args.gate_command != "status":
        payload["reason"] = args.reason
    reply = control.request(path, payload)
    if not reply.get("ok"):
        return _fail(args, reply.get("error") or reply.get("result"))
    if args.gate_command == "status":
        s = reply["status"]
        print(f"position={s['position']} presence={int(s['presence'])} safety={int(s['safety'])} "
              f"held={int(s['held'] or reply['held'])} faults={fault_names(Fault(s['faults']))} "
              f"opens={'n/a' if s['opens'] is None else s['opens']}")
        return 0
    read = reply.get("read") or {}
    print(f"{args.lane}: {reply['result']} (audited as #{reply.get('audit_id')}; camera read "
          f"{read.get('plate_masked') or 'none'}, evidence {read.get('evidence') or 'none'})")
    return 0


def _watch_daemon(path: Path, payload: dict[str, Any], seconds: float | None) -> int:
    deadline = None if seconds is None else time.monotonic() + seconds
    lines = control.stream(path, payload)
    with contextlib.closing(lines):
        for item in lines:
            print(format_watched(item), flush=True)
            if deadline is not None and time.monotonic() > deadline:
                break
    return 0


# -- direct on the port --------------------------------------------------------------------------------

Action = Callable[[GateDriver, Direct, argparse.Namespace], Awaitable[None]]


def _run_direct(args: argparse.Namespace, target: Direct, action: Action) -> int:
    async def go() -> None:
        driver: GateDriver = await connect_driver(target.driver, target.port, target.baud, None,
                                                  **target.options)
        try:
            await action(driver, target, args)
        finally:
            await driver.aclose()

    try:
        asyncio.run(go())
    except (PortUnavailable, GateTimeout, GateRefused, ConnectionError, ValueError) as exc:
        return _fail(args, exc, 2 if isinstance(exc, PortUnavailable) else 1)
    return 0


async def _status(driver: GateDriver, target: Direct, args: argparse.Namespace) -> None:
    print(format_status(await driver.status()))


async def _open(driver: GateDriver, target: Direct, args: argparse.Namespace) -> None:
    await driver.open_pulse(target.pulse_ms)
    print(f"opened: pulse {target.pulse_ms} ms acknowledged")


async def _watch(driver: GateDriver, target: Direct, args: argparse.Namespace) -> None:
    numbers = input_numbers(target.relay_map)

    async def stream() -> None:
        async for event in driver.events():
            print(f"{timestamp()} {format_event(event, numbers.get(event.kind))}", flush=True)

    streaming = asyncio.create_task(stream())
    await asyncio.sleep(0.01)  # subscribed before the snapshot, so no change falls in between
    print(f"{timestamp()} status {format_status(await driver.status())}", flush=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(streaming, args.seconds)


DIRECT: dict[str, Action] = {"status": _status, "open": _open, "watch": _watch}
