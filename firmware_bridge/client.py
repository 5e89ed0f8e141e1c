"""Client: request/acknowledge over the transport, retries, heartbeats, and input events.

One request is outstanding at a time (RS-485 is half-duplex). A request is retransmitted with the
same sequence number when no valid reply arrives within ``timeout_s`` (a corrupted reply fails its
CRC and is dropped by the framer, so CRC errors also end in a retry); the controller recognises the
retransmission and re-sends its reply without executing twice. A request may also wait
``late_s`` longer, after its last attempt, for a late reply to it (same sequence number, nothing
re-sent): a busy controller that executed an open and answers 1.5 s late is known to have opened.
Unsolicited ``Event`` frames are fanned out to every ``events()`` iterator.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from firmware_bridge.errors import GateError
from firmware_bridge.framer import FrameDecoder, encode_frame
from firmware_bridge.messages import (
    Ack,
    CodecError,
    Command,
    Event,
    EventKind,
    Heartbeat,
    Message,
    Reply,
    Status,
    decode_message,
    encode_message,
)
from firmware_bridge.transport import PortUnavailable, SerialSettings, SerialTransport

log = logging.getLogger(__name__)


class GateTimeout(GateError, TimeoutError):
    """No valid reply after all retries."""


@dataclass
class ClientStats:
    requests: int = 0
    retries: int = 0
    timeouts: int = 0
    late_replies: int = 0  # replies that came after the last attempt's timeout, within late_s
    codec_errors: int = 0
    unexpected_replies: int = 0
    events: int = 0
    events_lost: int = 0  # gaps in the controller's event sequence numbers
    heartbeat_failures: int = 0


@dataclass
class StreamDecoder:
    """Bytes -> (seq, message) pairs; bad frames and bad payloads are counted and dropped.

    Pure (no I/O), so the fuzz tests drive exactly the code the client runs.
    """

    frames: FrameDecoder = field(default_factory=FrameDecoder)
    codec_errors: int = 0

    def feed(self, data: bytes) -> list[tuple[int, Message]]:
        out: list[tuple[int, Message]] = []
        for frame in self.frames.feed(data):
            try:
                out.append((frame.seq, decode_message(frame)))
            except CodecError as exc:
                self.codec_errors += 1
                log.debug("dropped frame seq=%d: %s", frame.seq, exc)
        return out


class GateClient:
    """Speaks the parkgate gate protocol to one controller on one serial port."""

    def __init__(self, settings: SerialSettings, timeout_s: float = 0.25, retries: int = 3,
                 heartbeat_s: float = 0.25) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self.retries = retries
        self.heartbeat_s = heartbeat_s
        self.stats = ClientStats()
        self.decoder = StreamDecoder()
        self.transport = SerialTransport(settings, self._on_bytes, self._on_connection)
        self._seq = 0
        self._pending: tuple[int, asyncio.Future[Reply]] | None = None
        self._lock = asyncio.Lock()
        self._subscribers: list[asyncio.Queue[Event | None]] = []
        self._last_event_seq: int | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self.safety_occupied = False  # last known state of the safety loop (events and status replies)

    async def start(self) -> GateClient:
        await self.transport.start()
        self._heartbeat = asyncio.create_task(self._heartbeat_loop(), name="gate-heartbeat")
        return self

    async def aclose(self) -> None:
        if self._heartbeat:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        await self.transport.aclose()
        for queue in self._subscribers:
            queue.put_nowait(None)

    async def request(self, command: Command, retries: int | None = None, late_s: float = 0.0) -> Reply:
        """Send ``command`` and return the controller's reply, retrying on timeout or CRC errors; after
        the last attempt, wait up to ``late_s`` more for a late reply (the line stays ours meanwhile)."""
        async with self._lock:
            self.stats.requests += 1
            self._seq = (self._seq + 1) % 256
            wire = encode_frame(encode_message(command, self._seq))
            attempts = 1 + (self.retries if retries is None else retries)
            for attempt in range(attempts):
                if attempt:
                    self.stats.retries += 1
                reply = await self._attempt(self._seq, wire)
                if reply is not None:
                    return reply
            if late_s > 0 and (reply := await self._late_reply(self._seq, late_s)) is not None:
                self.stats.late_replies += 1
                log.warning("%s: %s answered late (after its %d attempts of %.2fs)", self.settings.port,
                            type(command).__name__, attempts, self.timeout_s)
                return reply
            raise GateTimeout(f"{type(command).__name__}: no reply from {self.settings.port} after "
                              f"{attempts} attempts of {self.timeout_s:.2f}s"
                              + (f" and {late_s:.1f}s more" if late_s > 0 else ""))

    async def _late_reply(self, seq: int, late_s: float) -> Reply | None:
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending = (seq, future)
        try:
            return await asyncio.wait_for(future, late_s)
        except TimeoutError:
            return None
        finally:
            self._pending = None

    async def _attempt(self, seq: int, wire: bytes) -> Reply | None:
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending = (seq, future)
        try:
            if not self.transport.connected:
                await self.transport.wait_connected(self.timeout_s)
            self.transport.write(wire)
            return await asyncio.wait_for(future, self.timeout_s)
        except (TimeoutError, PortUnavailable):
            self.stats.timeouts += 1
            return None
        finally:
            self._pending = None

    async def events(self) -> AsyncIterator[Event]:
        """Input events as they arrive, until the client is closed."""
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._subscribers.append(queue)
        try:
            while (event := await queue.get()) is not None:
                yield event
        finally:
            self._subscribers.remove(queue)

    def _on_bytes(self, data: bytes) -> None:
        for seq, message in self.decoder.feed(data):
            self._dispatch(seq, message)
        self.stats.codec_errors = self.decoder.codec_errors

    def _dispatch(self, seq: int, message: Message) -> None:
        if isinstance(message, Event):
            if message.kind is EventKind.SAFETY:
                self.safety_occupied = bool(message.value)
            self._deliver_event(seq, message)
            return
        if isinstance(message, Status):
            self.safety_occupied = message.safety
        pending = self._pending
        if pending is None or pending[0] != seq or pending[1].done() or not isinstance(message, Reply):
            self.stats.unexpected_replies += 1
            return
        pending[1].set_result(message)

    def _deliver_event(self, seq: int, event: Event) -> None:
        if self._last_event_seq is not None:
            self.stats.events_lost += (seq - self._last_event_seq - 1) % 256
        self._last_event_seq = seq
        self.stats.events += 1
        for queue in self._subscribers:
            queue.put_nowait(event)

    def _on_connection(self, up: bool) -> None:
        self._last_event_seq = None
        if not up and self._pending and not self._pending[1].done():
            log.info("link down with a request in flight; it will be retried")

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                reply = await self.request(Heartbeat(), retries=0)
            except GateTimeout:
                self.stats.heartbeat_failures += 1
                continue
            if not (isinstance(reply, Ack)):
                self.stats.unexpected_replies += 1
