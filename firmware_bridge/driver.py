"""The parkgate-serial gate driver (our controller firmware, docs/gate-protocol.md) and
:func:`connect_driver`, which picks a driver by its configuration name (see :mod:`firmware_bridge.gate`
for the interface and its safety contract)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from firmware_bridge.client import GateClient
from firmware_bridge.gate import DRIVER_NAMES, GateDriver, GateRefused, GateStatus, InputChange
from firmware_bridge.messages import (
    Ack,
    Close,
    Fault,
    HoldOpen,
    OpenPulse,
    Release,
    Reply,
    Result,
    Status,
    StatusRequest,
)
from firmware_bridge.transport import SerialSettings

# How long an open waits, after its last retry, for a late reply: a busy controller that answers 1.5 s
# late has opened the gate, and the lane must know (edge.lanes.machine: ack_timeout_ms covers this).
LATE_REPLY_S = 2.0

if TYPE_CHECKING:
    from firmware_bridge.modbus import ModbusBus


RESULT_MEANINGS = {
    Result.SAFETY_OCCUPIED: "a vehicle is on the safety loop",
    Result.BAD_ARGUMENT: "a value is out of the protocol's range",
    Result.UNSUPPORTED: "the controller does not know this command",
    Result.VERSION_UNSUPPORTED: "the controller speaks another protocol version",
    Result.FAULT: "an active fault forbids the command",
}


def fault_names(faults: Fault) -> str:
    """``MOTOR,OBSTRUCTION`` or ``none``."""
    return ",".join(f.name for f in Fault if f and f in faults and f.name) or "none"


class ParkgateSerialDriver:
    """Gate-controller board running parkgate firmware (docs/gate-protocol.md)."""

    def __init__(self, client: GateClient) -> None:
        self.client = client

    @classmethod
    async def connect(cls, port: str, baudrate: int = 115200,
                      **client_options: float) -> ParkgateSerialDriver:
        client = GateClient(SerialSettings(port, baudrate), **client_options)  # type: ignore[arg-type]
        return cls(await client.start())

    async def open_pulse(self, pulse_ms: int) -> None:
        await self._expect_ok(await self.client.request(OpenPulse(pulse_ms), late_s=LATE_REPLY_S), "open")

    async def hold_open(self, watchdog_ms: int = 1000) -> None:
        if self.client.heartbeat_s * 1000 * 2 >= watchdog_ms:
            raise GateRefused(f"watchdog_ms={watchdog_ms} must exceed twice the heartbeat interval "
                              f"({self.client.heartbeat_s * 1000:.0f} ms)")
        await self._expect_ok(await self.client.request(HoldOpen(watchdog_ms)), "hold-open")

    async def release(self) -> None:
        await self._expect_ok(await self.client.request(Release()), "release")

    async def close(self) -> None:
        if self.client.safety_occupied and (await self.status()).safety:  # re-check a stale belief
            raise GateRefused("close refused: a vehicle is on the safety loop")
        await self._expect_ok(await self.client.request(Close()), "close")

    async def status(self) -> GateStatus:
        reply = await self.client.request(StatusRequest())
        if not isinstance(reply, Status):
            raise GateRefused(f"status request answered with {reply}")
        return GateStatus(reply.position, reply.presence, reply.safety, reply.held, reply.faults, reply.opens)

    async def events(self) -> AsyncIterator[InputChange]:
        async for event in self.client.events():
            yield InputChange(event.kind, event.value)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def _expect_ok(self, reply: Reply, what: str) -> None:
        if isinstance(reply, Ack) and reply.result is Result.OK:
            return
        if isinstance(reply, Ack) and reply.result is Result.SAFETY_OCCUPIED:
            self.client.safety_occupied = True
        raise GateRefused(f"{what} refused by the controller: {await self._explain(reply)}")

    async def _explain(self, reply: Reply) -> str:
        """The refusal by name (``FAULT: an active fault forbids the command (MOTOR)``), not the repr."""
        if not isinstance(reply, Ack):
            return f"unexpected {type(reply).__name__} reply"
        text = f"{reply.result.name}: {RESULT_MEANINGS.get(reply.result, 'refused')}"
        if reply.result is Result.FAULT:
            with contextlib.suppress(Exception):  # best effort: the refusal stands without the names
                faults = (await self.status()).faults
                text += f" ({fault_names(faults)})"
        return text


async def connect_driver(kind: str, port: str, baudrate: int, bus: ModbusBus | None = None,
                         **options: object) -> GateDriver:
    """Driver by configuration name; raises ValueError naming the allowed names. ``bus``: the process's
    owner of Modbus ports, so that lanes wired to one RS-485 bus or board share its port."""
    if kind == "parkgate-serial":
        return await ParkgateSerialDriver.connect(port, baudrate, **options)  # type: ignore[arg-type]
    if kind == "modbus-rtu":
        from firmware_bridge.modbus import ModbusRelayDriver
        from firmware_bridge.relaymap import RelayMap

        return await ModbusRelayDriver.connect(port, baudrate, RelayMap.from_dict(options),  # type: ignore[arg-type]
                                               bus=bus)
    raise ValueError(f"gate driver {kind!r} unknown; allowed: {', '.join(DRIVER_NAMES)}")
