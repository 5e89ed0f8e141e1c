"""Emulator processes: our gate controller or a Modbus relay board on a pseudo-terminal.

Started by ``parkgate gate emulate``. On start it prints, one per line::

    PORT /dev/pts/N          the serial device to open (changes after an unplug)
    LINK /path               stable symlink to the current PORT (only with --link)
    CONTROL 127.0.0.1:PORT   the control channel
    READY

Control channel (docs/gate-protocol.md section 9): one text command per line over TCP on loopback,
one JSON object per reply line. Commands: state | presence 0|1 | safety 0|1 | fault NAME 0|1 |
corrupt N | drop N | unplug SECONDS | forge presence|safety 0|1 (an input event frame that no
input change caused) | delay-open SECONDS (the next open is executed at once but answered that
late). Bytes are paced at the configured baud rate in both directions
(10 bit times per byte) unless --no-pace, because a pty itself ignores the baud rate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass, field

from edge.tools.emulator.controller import Barrier, GateController, handle_frame
from edge.tools.emulator.relayboard import FUNCTION_TABLE, RelayBoard
from firmware_bridge.framer import Frame, FrameDecoder, encode_frame
from firmware_bridge.messages import (
    CodecError,
    Event,
    EventKind,
    Fault,
    HoldOpen,
    OpenPulse,
    decode_message,
    encode_message,
)

TICK_S = 0.01


@dataclass(frozen=True)
class EmulatorConfig:
    baudrate: int = 115200
    pace: bool = True
    link: str | None = None
    control_port: int = 0
    modbus: bool = False
    open_time_s: float = 1.0
    close_time_s: float = 1.0
    gates: int = 1  # barriers on one relay board (lanes sharing the board); the controller has one


class Pty:
    """Device end of a pseudo-terminal: we hold the master; clients open the slave path (or the link)."""

    def __init__(self, link: str | None) -> None:
        self.link = link
        self.master = -1
        self._slave = -1
        self.path = ""

    def open(self) -> str:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo or line editing before the client configures the port
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self._slave)
        if self.link:
            tmp = f"{self.link}.tmp"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            os.symlink(self.path, tmp)
            os.replace(tmp, self.link)
        return self.path

    def close(self) -> None:
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.master = self._slave = -1


class PacedWriter:
    """Writes whole frames to a pty master, taking as long as the bytes would take on the wire."""

    def __init__(self, fd_of: Callable[[], int], baudrate: int, pace: bool) -> None:
        self._fd_of = fd_of
        self.byte_time_s = 10 / baudrate if pace else 0.0
        self._lock = asyncio.Lock()

    def wire_time(self, nbytes: int) -> float:
        return nbytes * self.byte_time_s

    async def write(self, data: bytes) -> None:
        async with self._lock:
            if self.byte_time_s:
                await asyncio.sleep(self.wire_time(len(data)))
            fd = self._fd_of()
            view = memoryview(data)
            for _ in range(100):  # nobody reading for ~100 ms: drop, as a UART would overrun
                if not view or fd < 0:
                    return
                try:
                    view = view[os.write(fd, view):]
                except BlockingIOError:
                    await asyncio.sleep(0.001)
                except OSError:
                    return  # unplugged: the bytes are lost, as on a pulled cable


@dataclass
class FaultInjection:
    corrupt_replies: int = 0
    drop_replies: int = 0
    delay_open_s: float = 0.0  # the next open is executed at once but answered this late (busy firmware)

    def open_delay(self, command: object) -> float:
        """The delay to answer ``command`` with (once, for the next open command)."""
        if not isinstance(command, OpenPulse | HoldOpen) or not self.delay_open_s:
            return 0.0
        delay, self.delay_open_s = self.delay_open_s, 0.0
        return delay

    def apply(self, wire: bytes) -> bytes | None:
        if self.drop_replies:
            self.drop_replies -= 1
            return None
        if self.corrupt_replies:
            self.corrupt_replies -= 1
            return bytes((wire[0] ^ 0x5A, *wire[1:-2], wire[-2] ^ 0xFF, wire[-1]))
        return wire


@dataclass
class ControllerEmulator:
    """Our gate-controller firmware on a pty."""

    config: EmulatorConfig
    pty: Pty
    core: GateController = field(default_factory=GateController)
    decoder: FrameDecoder = field(default_factory=FrameDecoder)
    faults: FaultInjection = field(default_factory=FaultInjection)
    event_seq: int = 0
    plugged: bool = True

    def __post_init__(self) -> None:
        self.core.barrier = Barrier(self.config.open_time_s, self.config.close_time_s)
        self.writer = PacedWriter(lambda: self.pty.master, self.config.baudrate, self.config.pace)
        self._frames: asyncio.Queue[tuple[int, Frame]] = asyncio.Queue()

    def attach(self) -> None:
        asyncio.get_running_loop().add_reader(self.pty.master, self._readable)

    def detach(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self.pty.master)

    def _readable(self) -> None:
        try:
            data = os.read(self.pty.master, 4096)
        except OSError:
            return  # EIO while no client has the port open
        for frame in self.decoder.feed(data):
            self._frames.put_nowait((len(encode_frame(frame)), frame))

    async def run(self) -> None:
        await asyncio.gather(self._process_frames(), self._tick())

    async def _process_frames(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            wire_len, frame = await self._frames.get()
            await asyncio.sleep(self.writer.wire_time(wire_len))  # the request's own time on the wire
            opens_before = self.core.open_commands
            reply, events = handle_frame(self.core, frame, loop.time())
            if self.core.open_commands > opens_before:  # in the log, so that a harness can tie it to a visit
                print(f"OPEN {time.time():.3f} seq={frame.seq}", flush=True)
            with contextlib.suppress(CodecError):
                if delay := self.faults.open_delay(decode_message(frame)):
                    await asyncio.sleep(delay)  # executed, answered late; later frames wait behind it
            if reply is not None:
                out = self.faults.apply(encode_frame(encode_message(reply, frame.seq)))
                if out is not None:
                    await self.writer.write(out)
            await self._send_events(events)

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(TICK_S)
            await self._send_events(self.core.tick(loop.time()))

    async def _send_events(self, events: list[Event]) -> None:
        for event in events:
            self.event_seq = (self.event_seq + 1) % 256
            await self.writer.write(encode_frame(encode_message(event, self.event_seq)))

    def state(self) -> dict[str, object]:
        now = asyncio.get_running_loop().time()
        core = self.core
        return {
            "kind": "parkgate-controller", "port": self.pty.path, "plugged": self.plugged,
            "position": core.barrier.position.name, "presence": core.presence, "safety": core.safety,
            "held": core.held, "output": core.output_on(now), "faults": _fault_names(core.faults),
            "opens": core.opens, "open_commands": core.open_commands, "duplicates": core.duplicates,
            "rx": vars(self.decoder.stats),
            "pending_faults": vars(self.faults),
        }

    async def set_input(self, kind: EventKind, value: bool, gate: int = 0) -> None:
        if gate != 0:
            raise ValueError(f"gate {gate}: a controller has one gate (0)")
        await self._send_events(self.core.set_input(kind, value, asyncio.get_running_loop().time()))

    async def set_fault(self, fault: Fault, active: bool) -> None:
        await self._send_events(self.core.set_fault(fault, active, asyncio.get_running_loop().time()))

    async def forge(self, kind: EventKind, value: bool) -> None:
        """A valid input-change frame that no input change caused (line noise, a spoofer on the bus)."""
        await self._send_events([Event(kind, int(value))])


def _fault_names(faults: Fault) -> list[str]:
    return [f.name for f in Fault if f and f in faults and f.name]


class BoardContext:
    """pymodbus server datastore backed by :class:`RelayBoard` (the pre-v4 custom-context hook)."""

    def __init__(self, board: RelayBoard) -> None:
        from pymodbus.constants import ExcCodes

        self.board = board
        self.old_simulator = True
        self.simdevices: list[object] = []
        self._illegal = ExcCodes.ILLEGAL_ADDRESS

    def device_ids(self) -> list[int]:
        return [self.board.relay_map.device_id]

    def _check(self, device_id: int) -> None:
        from pymodbus.exceptions import NoSuchIdException

        if device_id != self.board.relay_map.device_id:
            raise NoSuchIdException(f"device_id {device_id}")

    async def async_getValues(self, device_id: int, func_code: int, address: int, count: int = 1):  # noqa: N802, ANN201
        self._check(device_id)
        table = FUNCTION_TABLE.get(func_code)
        now = asyncio.get_running_loop().time()
        values = None if table is None else self.board.read(table, address, count, now)
        return self._illegal if values is None else values

    async def async_setValues(self, device_id: int, func_code: int, address: int, values):  # noqa: N802, ANN001, ANN201
        self._check(device_id)
        table = FUNCTION_TABLE.get(func_code)
        now = asyncio.get_running_loop().time()
        ok = table is not None and self.board.write(table, address, list(values), now)
        return None if ok else self._illegal


def make_board_context(board: RelayBoard) -> object:
    from pymodbus.datastore import ModbusServerContext

    class _Context(BoardContext, ModbusServerContext):  # type: ignore[misc]  # isinstance check in pymodbus' server
        pass

    return _Context(board)


@dataclass
class RelayBoardEmulator:
    """A pymodbus RTU server on an inner pty, bridged (and paced) to the pty clients open."""

    config: EmulatorConfig
    pty: Pty
    plugged: bool = True

    def __post_init__(self) -> None:
        self.board = RelayBoard(gate_count=self.config.gates)
        for gate in self.board.gates:
            gate.barrier = Barrier(self.config.open_time_s, self.config.close_time_s)
        self.inner = Pty(None)
        self.to_client = PacedWriter(lambda: self.pty.master, self.config.baudrate, self.config.pace)
        self.to_board = PacedWriter(lambda: self.inner.master, self.config.baudrate, self.config.pace)
        self.faults = FaultInjection()

    def attach(self) -> None:
        asyncio.get_running_loop().add_reader(self.pty.master, self._pump, self.pty, self.to_board)

    def detach(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self.pty.master)

    def _pump(self, source: Pty, writer: PacedWriter) -> None:
        try:
            data: bytes | None = os.read(source.master, 4096)
        except OSError:
            return
        if source is self.inner and data:
            data = self.faults.apply(data)  # pymodbus writes each response in one piece
        if data:
            asyncio.get_running_loop().create_task(writer.write(data))

    async def run(self) -> None:
        from pymodbus.server import ModbusSerialServer

        inner_path = self.inner.open()
        asyncio.get_running_loop().add_reader(self.inner.master, self._pump, self.inner, self.to_client)
        server = ModbusSerialServer(make_board_context(self.board), port=inner_path,  # type: ignore[arg-type]
                                    baudrate=self.config.baudrate, ignore_missing_devices=True)
        await asyncio.gather(server.serve_forever(), self._tick())

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(TICK_S)
            self.board.tick(loop.time())

    def state(self) -> dict[str, object]:
        """The board, gate 0's fields at the top level, every gate's under ``gates``."""
        b = self.board
        gates = [{"position": g.barrier.position.name, "presence": g.presence, "safety": g.safety,
                  "held": False, "output": b.coils[g.relay_map.open_relay], "opens": g.opens,
                  "open_commands": g.open_commands} for g in b.gates]
        return {"kind": "modbus-relay-board", "port": self.pty.path, "plugged": self.plugged, **gates[0],
                "faults": [], "coils": b.coils, "pending_faults": vars(self.faults), "gates": gates}

    async def set_input(self, kind: EventKind, value: bool, gate: int = 0) -> None:
        if not 0 <= gate < len(self.board.gates):
            raise ValueError(f"gate {gate}: allowed 0..{len(self.board.gates) - 1}")
        if kind is EventKind.PRESENCE:
            self.board.gates[gate].presence = value
        else:
            self.board.gates[gate].safety = value
        self.board.tick(asyncio.get_running_loop().time())

    async def set_fault(self, fault: Fault, active: bool) -> None:
        raise ValueError("the relay board emulator has no fault inputs")

    async def forge(self, kind: EventKind, value: bool) -> None:
        raise ValueError("the relay board emulator sends no events (it is polled)")


Emulator = ControllerEmulator | RelayBoardEmulator
FAULT_NAMES = {f.name.lower(): f for f in Fault if f.name and f is not Fault.NONE}
HELP = ("commands: state | presence 0|1 [GATE] | safety 0|1 [GATE] | fault " + "|".join(FAULT_NAMES) +
        " 0|1 | corrupt N | drop N | unplug SECONDS | forge presence|safety 0|1 | delay-open SECONDS")


async def control_command(emulator: Emulator, line: str) -> dict[str, object]:
    """Execute one control-channel line; bad input gets an error naming what is allowed."""
    words = line.split()
    if not words:
        return {"error": HELP}
    name, args = words[0].lower(), words[1:]
    try:
        if name == "state" and not args:
            return emulator.state()
        if name in ("presence", "safety") and args[:1] in (["0"], ["1"]) and len(args) <= 2:
            gate = int(args[1]) if len(args) == 2 else 0  # ValueError: answered below
            await emulator.set_input(EventKind[name.upper()], args[0] == "1", gate)
            return emulator.state()
        if name == "fault" and len(args) == 2 and args[0] in FAULT_NAMES and args[1] in ("0", "1"):
            await emulator.set_fault(FAULT_NAMES[args[0]], args[1] == "1")
            return emulator.state()
        if name == "forge" and len(args) == 2 and args[0] in ("presence", "safety") and args[1] in ("0", "1"):
            await emulator.forge(EventKind[args[0].upper()], args[1] == "1")
            return emulator.state()
        if name == "delay-open" and len(args) == 1:
            if not isinstance(emulator, ControllerEmulator):
                raise ValueError("delay-open needs the parkgate controller (not --modbus)")
            seconds = float(args[0])
            if not 0 <= seconds <= 60:
                raise ValueError("delay-open seconds must be 0..60")
            emulator.faults.delay_open_s = seconds
            return emulator.state()
        if name in ("corrupt", "drop") and len(args) == 1 and args[0].isdigit():
            setattr(emulator.faults, f"{name}_replies", int(args[0]))
            return emulator.state()
        if name == "unplug" and len(args) == 1:
            seconds = float(args[0])
            if not 0 <= seconds <= 3600:
                raise ValueError("unplug seconds must be 0..3600")
            asyncio.get_running_loop().create_task(unplug(emulator, seconds))
            return {"unplugged": True, "seconds": seconds}
    except ValueError as exc:
        return {"error": f"{line.strip()!r}: {exc}"}
    return {"error": f"{line.strip()!r} not understood; {HELP}"}


async def unplug(emulator: Emulator, seconds: float) -> None:
    """Cable pull: the device disappears for ``seconds`` and comes back as a new pty (link updated).

    The link goes too while unplugged, as udev removes /dev/serial/by-id links: left pointing at the
    freed /dev/pts/N, it would lead the host to whatever pty reuses that number (another emulator)."""
    emulator.detach()
    emulator.plugged = False
    emulator.pty.close()
    if emulator.pty.link:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(emulator.pty.link)
    await asyncio.sleep(seconds)
    path = emulator.pty.open()
    emulator.attach()
    emulator.plugged = True
    print(f"PORT {path}", flush=True)


async def serve_control(emulator: Emulator, port: int) -> asyncio.Server:
    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, ValueError):  # ValueError: line over 64 KiB
            while line := await reader.readline():
                reply = await control_command(emulator, line.decode(errors="replace"))
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        writer.close()

    return await asyncio.start_server(session, "127.0.0.1", port)


async def run_emulator(config: EmulatorConfig, announce: Callable[[str], None] | None = None) -> None:
    """Run until cancelled; ``announce`` gets the PORT/LINK/CONTROL/READY lines."""
    say = announce or (lambda line: print(line, flush=True))
    pty = Pty(config.link)
    path = pty.open()
    kind = RelayBoardEmulator if config.modbus else ControllerEmulator
    emulator: Emulator = kind(config, pty)
    emulator.attach()
    control = await serve_control(emulator, config.control_port)
    say(f"PORT {path}")
    if config.link:
        say(f"LINK {config.link}")
    say(f"CONTROL 127.0.0.1:{control.sockets[0].getsockname()[1]}")
    pacing = f"paced at {config.baudrate} baud" if config.pace else "unpaced"
    say(f"READY {emulator.state()['kind']} ({pacing})")
    try:
        await emulator.run()
    finally:
        control.close()
        pty.close()
        if config.link:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(config.link)


async def _until_signalled(config: EmulatorConfig) -> None:
    task = asyncio.current_task()
    assert task is not None
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await run_emulator(config)


def main(config: EmulatorConfig) -> int:
    """Run the emulator until SIGINT/SIGTERM, then remove the link and exit 0."""
    asyncio.run(_until_signalled(config))
    return 0



def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `parkgate gate emulate` (also `python -m edge.tools.emulator`)."""
    parser.add_argument("--modbus", action="store_true", help="emulate a Modbus RTU relay board instead")
    parser.add_argument("--baud", type=int, default=115200, help="baud rate the output is paced at")
    parser.add_argument("--no-pace", action="store_true", help="send at pty speed, ignoring --baud")
    parser.add_argument("--link", help="keep a symlink at this path to the current pty (survives unplug)")
    parser.add_argument("--control-port", type=int, default=0, help="loopback TCP port for control")
    parser.add_argument("--open-time", type=float, default=1.0, help="barrier opening time, seconds")
    parser.add_argument("--close-time", type=float, default=1.0, help="barrier closing time, seconds")
    parser.add_argument("--gates", type=int, default=1,
                        help="with --modbus: barriers on the board (gate k: relay k, inputs 4k..4k+3)")


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    if not 300 <= args.baud <= 4_000_000:
        raise SystemExit(f"--baud {args.baud}: allowed 300..4000000")
    return EmulatorConfig(baudrate=args.baud, pace=not args.no_pace, link=args.link,
                          control_port=args.control_port, modbus=args.modbus,
                          open_time_s=args.open_time, close_time_s=args.close_time, gates=args.gates)
