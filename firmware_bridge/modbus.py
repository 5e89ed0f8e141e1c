"""Modbus RTU relay/IO board driver (pymodbus 3 async client) behind the GateDriver interface.

Opening is always a "flash on" write: the board's timer closes the relay again, so a dead daemon
cannot leave the gate open. ``hold_open`` re-issues flash-on pulses of ``watchdog_ms`` every third
of that time; when this process stops refreshing, the last pulse runs out on the board.

Several lanes on one RS-485 bus or one board: :class:`ModbusBus` is the one owner of the serial port,
one pymodbus client that every lane's driver shares (pymodbus sends one request at a time); each lane
has its own unit id and relay/inputs (:class:`RelayMap`), and the port closes with its last lane.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU
from pymodbus.pdu.bit_message import ReadCoilsResponse, ReadDiscreteInputsResponse, WriteSingleCoilResponse
from pymodbus.pdu.register_message import WriteSingleRegisterResponse

from firmware_bridge.errors import GateError
from firmware_bridge.gate import GateRefused, GateStatus, InputChange
from firmware_bridge.messages import EventKind, Fault, Position
from firmware_bridge.relaymap import RelayMap
from firmware_bridge.transport import PortUnavailable

log = logging.getLogger(__name__)
UNANSWERED_POLL_BACKOFF_S = 0.2


class ModbusGateError(GateError, ConnectionError):
    """The relay board did not answer, answered with a Modbus exception, or answered with a reply that
    is not the one the request asked for (another kind, or too few bits)."""


class LateAnswer(ModbusGateError):
    """The reply was of another kind than the request: an earlier request's late answer took its place
    (the request's own answer still comes)."""


def check_reply(response: ModbusPDU, expected: type[ModbusPDU], board: str) -> None:
    """Refuse a reply that is an error or not of the ``expected`` kind, naming both.

    pymodbus 3 hands the waiting request whatever frame arrives next, whatever its function code: after
    a write times out and is retried, the retry's own (late) answer lands on the next request. The
    function code is compared, not only the class: ReadDiscreteInputsResponse subclasses
    ReadCoilsResponse.
    """
    if response.isError():
        raise ModbusGateError(f"{board} answered {response}")
    if response.function_code != expected.function_code or not isinstance(response, expected):
        raise LateAnswer(
            f"{board} answered function code {response.function_code} ({type(response).__name__}), "
            f"expected {expected.function_code} ({expected.__name__}): a late answer to an earlier "
            "request, refused")


def check_bits(response: ModbusPDU, count: int, what: str, board: str) -> Sequence[bool]:
    """The ``count`` bits asked for, or ModbusGateError if the reply carries fewer."""
    if len(response.bits) < count:
        raise ModbusGateError(f"{board} answered {len(response.bits)} {what}, asked for {count}")
    return response.bits[:count]


def position_from_limits(open_limit: bool, closed_limit: bool, relay_on: bool) -> Position:
    if open_limit and closed_limit:
        return Position.UNKNOWN  # both limit switches: wiring fault
    if open_limit:
        return Position.OPEN
    if closed_limit:
        return Position.CLOSED
    return Position.OPENING if relay_on else Position.CLOSING


async def open_client(port: str, baudrate: int, timeout_s: float = 0.3,
                      retries: int = 3) -> AsyncModbusSerialClient:
    """A connected Modbus RTU client on ``port``, or PortUnavailable naming the port."""
    client = AsyncModbusSerialClient(port, framer=FramerType.RTU, baudrate=baudrate, timeout=timeout_s,
                                     retries=retries, reconnect_delay=0.05, reconnect_delay_max=0.5)
    if not await client.connect():
        client.close()
        raise PortUnavailable(f"serial port {port!r} at {baudrate} baud: cannot open for Modbus RTU")
    return client


class ModbusBus:
    """The one owner of each Modbus serial port of a process: lanes wired to the same port share its
    client (one bus, unit ids / relays per lane); the port is closed when its last lane lets go."""

    def __init__(self) -> None:
        self._clients: dict[str, tuple[AsyncModbusSerialClient, int, int]] = {}  # port: client, baud, users
        self._lock = asyncio.Lock()

    async def acquire(self, port: str, baudrate: int) -> AsyncModbusSerialClient:
        async with self._lock:  # two lanes connecting at once must not both open the port
            if port in self._clients:
                client, baud, users = self._clients[port]
                if baud != baudrate:
                    raise GateRefused(f"serial port {port!r} is open at {baud} baud for another lane; "
                                      f"one bus has one baud rate (asked: {baudrate})")
                self._clients[port] = (client, baud, users + 1)
                return client
            client = await open_client(port, baudrate)
            self._clients[port] = (client, baudrate, 1)
            return client

    def release(self, port: str) -> None:
        client, baud, users = self._clients.pop(port)
        if users > 1:
            self._clients[port] = (client, baud, users - 1)
        else:
            client.close()

    def users(self, port: str) -> int:
        return self._clients[port][2] if port in self._clients else 0


class ModbusRelayDriver:
    def __init__(self, client: AsyncModbusSerialClient, relay_map: RelayMap, poll_s: float = 0.05,
                 on_close: Callable[[], None] | None = None) -> None:
        self.client = client
        self.map = relay_map
        self.poll_s = poll_s
        self._hold: asyncio.Task[None] | None = None
        self._on_close = on_close or client.close

    @classmethod
    async def connect(cls, port: str, baudrate: int = 115200, relay_map: RelayMap | None = None,
                      timeout_s: float = 0.3, retries: int = 3, bus: ModbusBus | None = None
                      ) -> ModbusRelayDriver:
        """A driver owning ``port``, or (``bus`` given) sharing it with the bus's other lanes."""
        if bus is None:
            return cls(await open_client(port, baudrate, timeout_s, retries), relay_map or RelayMap())
        client = await bus.acquire(port, baudrate)
        return cls(client, relay_map or RelayMap(), on_close=lambda: bus.release(port))

    async def open_pulse(self, pulse_ms: int) -> None:
        await self._flash(pulse_ms)

    async def hold_open(self, watchdog_ms: int = 1000) -> None:
        await self._flash(watchdog_ms)
        self._stop_hold()
        self._hold = asyncio.create_task(self._refresh(watchdog_ms), name="modbus-hold-open")

    async def release(self) -> None:
        self._stop_hold()
        await self._write(WriteSingleCoilResponse, self.client.write_coil, self.map.open_relay, False)

    async def close(self) -> None:
        if (await self.status()).safety:
            raise GateRefused("close refused: a vehicle is on the safety loop")
        await self.release()

    async def status(self) -> GateStatus:
        m = self.map
        inputs = await self._read_bits(self.client.read_discrete_inputs, ReadDiscreteInputsResponse,
                                       m.input_count, "discrete inputs")
        coils = await self._read_bits(self.client.read_coils, ReadCoilsResponse, m.relay_count, "coils")
        position = position_from_limits(inputs[m.open_limit_input], inputs[m.closed_limit_input],
                                        coils[m.open_relay])
        return GateStatus(position, inputs[m.presence_input], inputs[m.safety_input],
                          self._hold is not None, Fault.NONE, None)

    async def events(self) -> AsyncIterator[InputChange]:
        """Input changes found by polling the board every ``poll_s`` (relay boards cannot push).

        A poll the board does not answer or answers wrongly (noise, a cable pulled, a late reply to
        another request) is skipped, not raised: the stream lives as long as the lane, and the first
        good answer after the gap reports what changed meanwhile. The back-off also lets a reply still
        in flight arrive while no request waits, so it is dropped instead of answering the next one.
        Cancellation is not caught (CancelledError is no Exception).
        """
        last: GateStatus | None = None
        while True:
            try:
                now = await self.status()
            except (ModbusGateError, ConnectionError):  # no or a refused answer, or the port gone
                await asyncio.sleep(max(self.poll_s, UNANSWERED_POLL_BACKOFF_S))
                continue
            for kind, before, after in (
                (EventKind.PRESENCE, last and last.presence, now.presence),
                (EventKind.SAFETY, last and last.safety, now.safety),
                (EventKind.POSITION, last and last.position, now.position),
            ):
                if last is not None and before != after:
                    yield InputChange(kind, int(after))
            last = now
            await asyncio.sleep(self.poll_s)

    async def aclose(self) -> None:
        self._stop_hold()
        close, self._on_close = self._on_close, lambda: None  # once: a shared port counts its users
        close()

    async def _flash(self, duration_ms: int) -> None:
        units = math.ceil(duration_ms / self.map.flash_unit_ms)
        if not 1 <= units <= 0xFFFF:
            raise GateRefused(f"pulse of {duration_ms} ms is not 1..65535 units "
                              f"of {self.map.flash_unit_ms} ms")
        await self._write(WriteSingleRegisterResponse, self.client.write_register,
                          self.map.flash_register + self.map.open_relay, units)

    async def _refresh(self, watchdog_ms: int) -> None:
        while True:
            await asyncio.sleep(watchdog_ms / 3000)
            with contextlib.suppress(ModbusGateError):
                await self._flash(watchdog_ms)

    def _stop_hold(self) -> None:
        if self._hold is not None:
            self._hold.cancel()
            self._hold = None

    @property
    def _board(self) -> str:
        return f"relay board {self.map.device_id} on {self.client.comm_params.host}"

    async def _read_bits(self, method: Callable[..., Awaitable[ModbusPDU]], expected: type[ModbusPDU],
                         count: int, what: str) -> Sequence[bool]:
        # a late answer to a poll every 50 ms would flood the journal: the read's second asking logs at DEBUG
        response = await self._ask(logging.DEBUG, expected, method, 0, count=count)
        return check_bits(response, count, what, self._board)

    async def _write(self, expected: type[ModbusPDU], method: Callable[..., Awaitable[ModbusPDU]],
                     *args: object) -> None:
        await self._ask(logging.WARNING, expected, method, *args)

    async def _ask(self, level: int, expected: type[ModbusPDU], method: Callable[..., Awaitable[ModbusPDU]],
                   *args: object, **kwargs: object) -> ModbusPDU:
        """``method``'s reply, asked once more when an earlier request's late answer took its place, after
        a pause in which its own answer arrives with no request waiting (and is dropped). Every request
        here may be sent twice: a read changes nothing, a write sets a coil or a register to a value.
        Without it an open or a release failed whenever the hold's refresh, cancelled by the release, or a
        write retried on a busy CPU was answered late (seen 2026-12-03: ``parkgate gate release`` failed;
        the relay stayed on until its flash ran out), and so did ``parkgate gate status``."""
        try:
            return await self._call(expected, method, *args, **kwargs)
        except LateAnswer as exc:
            log.log(level, "%s; asked again", exc)
            await asyncio.sleep(UNANSWERED_POLL_BACKOFF_S)
            return await self._call(expected, method, *args, **kwargs)

    async def _call(self, expected: type[ModbusPDU], method: Callable[..., Awaitable[ModbusPDU]],
                    *args: object, **kwargs: object) -> ModbusPDU:
        """``method``'s reply, which must be of the ``expected`` kind; ModbusGateError otherwise."""
        try:
            response = await method(*args, device_id=self.map.device_id, **kwargs)
        except ModbusException as exc:
            raise ModbusGateError(f"{self._board}: {exc}") from exc
        check_reply(response, expected, self._board)
        return response
