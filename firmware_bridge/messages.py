"""Codec: :class:`Frame` <-> typed messages (layer 2 of the parkgate gate protocol).

Every message is a frozen dataclass with a fixed big-endian ``FORMAT`` (struct syntax) whose fields
are the dataclass fields in order. Values are validated on construction, so a decoded message is
always within the ranges documented in docs/gate-protocol.md.
"""

from __future__ import annotations

import struct
from dataclasses import astuple, dataclass
from enum import IntEnum, IntFlag
from typing import Any, ClassVar

from firmware_bridge.errors import GateError
from firmware_bridge.framer import PROTOCOL_VERSION, Frame

PULSE_MS_RANGE = (50, 30_000)
WATCHDOG_MS_RANGE = (200, 10_000)


class CodecError(GateError, ValueError):
    """A valid frame whose type, version or payload is not an allowed message."""


class MsgType(IntEnum):
    OPEN_PULSE = 0x01
    HOLD_OPEN = 0x02
    RELEASE = 0x03
    CLOSE = 0x04
    STATUS_REQUEST = 0x05
    HEARTBEAT = 0x06
    ACK = 0x81
    STATUS = 0x82
    EVENT = 0x83


class Result(IntEnum):
    OK = 0
    SAFETY_OCCUPIED = 1  # close refused: a vehicle is on the safety loop
    BAD_ARGUMENT = 2
    UNSUPPORTED = 3  # unknown message type
    VERSION_UNSUPPORTED = 4
    FAULT = 5  # controller has an active fault that forbids the command


class Position(IntEnum):
    UNKNOWN = 0
    CLOSED = 1
    OPENING = 2
    OPEN = 3
    CLOSING = 4


class Fault(IntFlag):
    NONE = 0
    MOTOR = 0x01
    PRESENCE_LOOP = 0x02
    SAFETY_LOOP = 0x04
    OBSTRUCTION = 0x08
    WATCHDOG = 0x10  # a hold-open was dropped because heartbeats stopped


FAULT_BITS = int(max(Fault)) * 2 - 1  # every defined fault bit (0x1F); the others must be 0


class EventKind(IntEnum):
    PRESENCE = 1  # value 1 = vehicle on the presence (arming) loop
    SAFETY = 2  # value 1 = vehicle on the safety (under-barrier) loop
    POSITION = 3  # value = Position
    FAULT = 4  # value = Fault bits now active
    WATCHDOG_RELEASE = 5  # value 0; a held-open gate was dropped on heartbeat loss


def _in_range(name: str, value: int, bounds: tuple[int, int]) -> None:
    low, high = bounds
    if not low <= value <= high:
        raise CodecError(f"{name}={value} out of range {low}..{high}")


@dataclass(frozen=True)
class OpenPulse:
    """Energise the open output for ``pulse_ms``; the controller's own timer ends the pulse."""

    TYPE: ClassVar[MsgType] = MsgType.OPEN_PULSE
    FORMAT: ClassVar[str] = "!H"
    pulse_ms: int

    def __post_init__(self) -> None:
        _in_range("pulse_ms", self.pulse_ms, PULSE_MS_RANGE)


@dataclass(frozen=True)
class HoldOpen:
    """Keep the gate open while valid frames keep arriving at most ``watchdog_ms`` apart."""

    TYPE: ClassVar[MsgType] = MsgType.HOLD_OPEN
    FORMAT: ClassVar[str] = "!H"
    watchdog_ms: int

    def __post_init__(self) -> None:
        _in_range("watchdog_ms", self.watchdog_ms, WATCHDOG_MS_RANGE)


@dataclass(frozen=True)
class Release:
    """End a hold-open; the barrier then closes by itself once both loops are clear."""

    TYPE: ClassVar[MsgType] = MsgType.RELEASE
    FORMAT: ClassVar[str] = ""


@dataclass(frozen=True)
class Close:
    """Close now (ends any pulse or hold); refused with SAFETY_OCCUPIED while the safety loop is busy."""

    TYPE: ClassVar[MsgType] = MsgType.CLOSE
    FORMAT: ClassVar[str] = ""


@dataclass(frozen=True)
class StatusRequest:
    TYPE: ClassVar[MsgType] = MsgType.STATUS_REQUEST
    FORMAT: ClassVar[str] = ""


@dataclass(frozen=True)
class Heartbeat:
    TYPE: ClassVar[MsgType] = MsgType.HEARTBEAT
    FORMAT: ClassVar[str] = ""


@dataclass(frozen=True)
class Ack:
    TYPE: ClassVar[MsgType] = MsgType.ACK
    FORMAT: ClassVar[str] = "!B"
    result: Result

    def __post_init__(self) -> None:
        object.__setattr__(self, "result", _enum(Result, "result", self.result))


@dataclass(frozen=True)
class Status:
    """Reply to StatusRequest: a full snapshot of the controller."""

    TYPE: ClassVar[MsgType] = MsgType.STATUS
    FORMAT: ClassVar[str] = "!BBBBBI"
    position: Position
    presence: bool
    safety: bool
    held: bool
    faults: Fault
    opens: int  # open-output activations since power-up (wraps at 2**32)

    def __post_init__(self) -> None:
        object.__setattr__(self, "position", _enum(Position, "position", self.position))
        for name in ("presence", "safety", "held"):
            value = getattr(self, name)
            if value not in (0, 1):
                raise CodecError(f"{name}={value!r} must be 0 or 1")
            object.__setattr__(self, name, bool(value))
        if not 0 <= int(self.faults) <= FAULT_BITS:
            raise CodecError(f"faults=0x{int(self.faults):02x} has undefined bits")
        object.__setattr__(self, "faults", Fault(self.faults))
        _in_range("opens", self.opens, (0, 2**32 - 1))


@dataclass(frozen=True)
class Event:
    """Unsolicited input change from the controller (own sequence space, not acknowledged)."""

    TYPE: ClassVar[MsgType] = MsgType.EVENT
    FORMAT: ClassVar[str] = "!BB"
    kind: EventKind
    value: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", _enum(EventKind, "kind", self.kind))
        _in_range("value", self.value, (0, 255))
        problem = _event_value_problem(self.kind, self.value)
        if problem:
            raise CodecError(f"EVENT {self.kind.name} value={problem}")


def _event_value_problem(kind: EventKind, value: int) -> str | None:
    """Why ``value`` is no defined code for an EVENT of ``kind`` (docs/gate-protocol.md §3), or None.

    A version-1 receiver rejects unknown codes (§6): a stray bit must not read as a vehicle."""
    if kind in (EventKind.PRESENCE, EventKind.SAFETY):
        return None if value in (0, 1) else f"{value} is not 0 or 1"
    if kind is EventKind.POSITION:
        return None if value in set(Position) else f"{value} is not a position code: {_codes(Position)}"
    if kind is EventKind.FAULT:
        undefined = value & ~FAULT_BITS
        return None if not undefined else (f"0x{value:02x} has undefined fault bits 0x{undefined:02x}; "
                                           f"defined: {_fault_bit_names()}")
    return None if value == 0 else f"{value} must be 0"  # WATCHDOG_RELEASE


def _codes(enum_cls: type[IntEnum]) -> str:
    return ", ".join(f"{m.value}={m.name}" for m in enum_cls)


def _fault_bit_names() -> str:
    return ", ".join(f"0x{int(f):02x}={f.name}" for f in Fault if f)


Command = OpenPulse | HoldOpen | Release | Close | StatusRequest | Heartbeat
Reply = Ack | Status
Message = Command | Reply | Event
MESSAGE_CLASSES: dict[int, Any] = {
    cls.TYPE: cls
    for cls in (OpenPulse, HoldOpen, Release, Close, StatusRequest, Heartbeat, Ack, Status, Event)
}


def _enum(enum_cls: type[IntEnum], name: str, value: int) -> IntEnum:
    try:
        return enum_cls(value)
    except ValueError:
        raise CodecError(f"{name}={value!r} is not one of {_codes(enum_cls)}") from None


def encode_message(message: Message, seq: int) -> Frame:
    values = [int(v) for v in astuple(message)]
    return Frame(seq=seq, msg_type=int(message.TYPE), payload=struct.pack(message.FORMAT, *values))


def decode_message(frame: Frame) -> Message:
    """Typed message of a frame; raises CodecError naming the bad version, type or payload."""
    if frame.version != PROTOCOL_VERSION:
        raise CodecError(f"protocol version {frame.version} not supported "
                         f"(this side speaks {PROTOCOL_VERSION})")
    cls = MESSAGE_CLASSES.get(frame.msg_type)
    if cls is None:
        known = ", ".join(f"0x{t:02x}" for t in MESSAGE_CLASSES)
        raise CodecError(f"message type 0x{frame.msg_type:02x} unknown (known: {known})")
    expected = struct.calcsize(cls.FORMAT)
    if len(frame.payload) != expected:
        raise CodecError(f"{cls.__name__} payload must be {expected} bytes, got {len(frame.payload)}")
    return cls(*struct.unpack(cls.FORMAT, frame.payload))
