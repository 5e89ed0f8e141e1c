"""Gate-controller firmware logic, written the way the real firmware must behave.

Pure state machines: every method takes ``now`` (seconds, monotonic) and returns what happened, so
the same code is stepped by the pty emulator and by fast unit tests. Safety rules live here:
an open is a timed pulse or a hold that the watchdog drops, and the barrier never moves down while
the safety loop is occupied (it reverses if a vehicle arrives while it is closing).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from firmware_bridge.framer import PROTOCOL_VERSION, Frame
from firmware_bridge.messages import (
    MESSAGE_CLASSES,
    Ack,
    Close,
    CodecError,
    Command,
    Event,
    EventKind,
    Fault,
    Heartbeat,
    HoldOpen,
    OpenPulse,
    Position,
    Release,
    Reply,
    Result,
    Status,
    StatusRequest,
    decode_message,
)

DUPLICATE_WINDOW_S = 2.0


@dataclass
class Barrier:
    """Barrier arm with motion times; follows the open output unless the safety loop forbids closing."""

    open_time_s: float = 1.0
    close_time_s: float = 1.0
    position: Position = Position.CLOSED
    motion_done_at: float = 0.0

    def step(self, output_on: bool, safety: bool, jammed: bool, now: float) -> list[Event]:
        before = self.position
        if jammed:
            return []
        if output_on or (safety and self.position is not Position.CLOSED):
            self._toward_open(now)
        else:
            self._toward_closed(now)
        if self.position is before:
            return []
        return [Event(EventKind.POSITION, int(self.position))]

    def _toward_open(self, now: float) -> None:
        if self.position in (Position.CLOSED, Position.CLOSING, Position.UNKNOWN):
            self.position, self.motion_done_at = Position.OPENING, now + self.open_time_s
        elif self.position is Position.OPENING and now >= self.motion_done_at:
            self.position = Position.OPEN

    def _toward_closed(self, now: float) -> None:
        if self.position in (Position.OPEN, Position.OPENING, Position.UNKNOWN):
            self.position, self.motion_done_at = Position.CLOSING, now + self.close_time_s
        elif self.position is Position.CLOSING and now >= self.motion_done_at:
            self.position = Position.CLOSED


@dataclass
class GateController:
    """Our controller board: executes commands, runs the pulse timer and the heartbeat watchdog."""

    barrier: Barrier = field(default_factory=Barrier)
    presence: bool = False
    safety: bool = False
    faults: Fault = Fault.NONE
    opens: int = 0  # barrier output off -> on transitions
    open_commands: int = 0  # open commands executed, also those extending an open already running
    pulse_until: float | None = None
    held: bool = False
    watchdog_s: float = 1.0
    last_rx: float = 0.0
    duplicates: int = 0
    _last: tuple[int, Command, float, Reply] | None = None

    def output_on(self, now: float) -> bool:
        return self.held or (self.pulse_until is not None and now < self.pulse_until)

    def handle(self, seq: int, command: Command, now: float) -> tuple[Reply, list[Event]]:
        """Execute one valid command; a retransmission (same seq and content) only re-sends the reply."""
        self.last_rx = now
        if self._last and self._last[:2] == (seq, command) and now - self._last[2] < DUPLICATE_WINDOW_S:
            self.duplicates += 1
            return self._last[3], []
        was_on = self.output_on(now)
        reply = self._execute(command, now)
        if not was_on and self.output_on(now):
            self.opens += 1
        if isinstance(command, (OpenPulse, HoldOpen)) and reply == Ack(Result.OK):
            self.open_commands += 1
        self._last = (seq, command, now, reply)
        return reply, self.tick(now)

    def _execute(self, command: Command, now: float) -> Reply:
        if isinstance(command, StatusRequest):
            return self.status(now)
        if isinstance(command, Heartbeat):
            return Ack(Result.OK)
        if isinstance(command, (OpenPulse, HoldOpen)) and self.faults & Fault.MOTOR:
            return Ack(Result.FAULT)
        if isinstance(command, OpenPulse):
            self.faults &= ~Fault.WATCHDOG
            self.pulse_until = max(self.pulse_until or now, now + command.pulse_ms / 1000)
        elif isinstance(command, HoldOpen):
            self.faults &= ~Fault.WATCHDOG
            self.held, self.watchdog_s = True, command.watchdog_ms / 1000
        elif isinstance(command, Release):
            self.held = False
        elif isinstance(command, Close):
            if self.safety:
                return Ack(Result.SAFETY_OCCUPIED)
            self.held, self.pulse_until = False, None
        return Ack(Result.OK)

    def status(self, now: float) -> Status:
        return Status(self.barrier.position, self.presence, self.safety, self.held, self.faults, self.opens)

    def tick(self, now: float) -> list[Event]:
        """Advance timers and the barrier to ``now``; returns the events to report."""
        events: list[Event] = []
        if self.held and now - self.last_rx > self.watchdog_s:
            self.held = False
            self.faults |= Fault.WATCHDOG
            events += [Event(EventKind.WATCHDOG_RELEASE, 0), Event(EventKind.FAULT, int(self.faults))]
        if self.pulse_until is not None and now >= self.pulse_until:
            self.pulse_until = None
        jammed = bool(self.faults & Fault.MOTOR)
        events += self.barrier.step(self.output_on(now), self.safety, jammed, now)
        return events

    def set_input(self, kind: EventKind, value: bool, now: float) -> list[Event]:
        """A loop detector changed (from the control channel, as the real detector would)."""
        current = self.presence if kind is EventKind.PRESENCE else self.safety
        if current == value:
            return []
        if kind is EventKind.PRESENCE:
            self.presence = value
        else:
            self.safety = value
        return [Event(kind, int(value)), *self.tick(now)]

    def set_fault(self, fault: Fault, active: bool, now: float) -> list[Event]:
        before = self.faults
        self.faults = (self.faults | fault) if active else (self.faults & ~fault)
        if self.faults == before:
            return []
        return [Event(EventKind.FAULT, int(self.faults)), *self.tick(now)]


def handle_frame(controller: GateController, frame: Frame, now: float) -> tuple[Reply | None, list[Event]]:
    """What the firmware does with one CRC-valid frame: execute a command, or reject it with a reason."""
    try:
        message = decode_message(frame)
    except CodecError:
        if frame.version != PROTOCOL_VERSION:
            return Ack(Result.VERSION_UNSUPPORTED), []
        if frame.msg_type not in MESSAGE_CLASSES:
            return Ack(Result.UNSUPPORTED), []
        return Ack(Result.BAD_ARGUMENT), []
    if not isinstance(message, Command):
        return None, []  # controller-to-host types echoed back at us: ignore
    return controller.handle(frame.seq, message, now)
