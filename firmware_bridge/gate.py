"""The one gate interface the daemon uses, whatever hardware is on the other end of the cable.

Safety contract shared by every implementation (``firmware_bridge.driver.ParkgateSerialDriver``,
``firmware_bridge.modbus.ModbusRelayDriver``):
- ``open_pulse`` is timed by the hardware, never by a sleep in this process;
- ``hold_open`` is kept alive by this process (heartbeats or pulse refreshes) and drops by itself
  within the watchdog time if the process dies;
- ``close`` raises :class:`GateRefused` while the safety loop is known to be occupied, without sending.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from firmware_bridge.errors import GateError
from firmware_bridge.messages import EventKind, Fault, Position

DRIVER_NAMES = ("parkgate-serial", "modbus-rtu")


class GateRefused(GateError, RuntimeError):
    """The gate will not do this now (vehicle on the safety loop, controller fault, bad argument)."""


@dataclass(frozen=True)
class GateStatus:
    position: Position
    presence: bool
    safety: bool
    held: bool
    faults: Fault
    opens: int | None  # controller's activation counter, None where the hardware has none


@dataclass(frozen=True)
class InputChange:
    kind: EventKind
    value: int


class GateDriver(Protocol):
    async def open_pulse(self, pulse_ms: int) -> None: ...
    async def hold_open(self, watchdog_ms: int = 1000) -> None: ...
    async def release(self) -> None: ...
    async def close(self) -> None: ...
    async def status(self) -> GateStatus: ...
    def events(self) -> AsyncIterator[InputChange]: ...
    async def aclose(self) -> None: ...
