"""Transport: a serial port in asyncio, with reconnect when the device vanishes and reappears.

pyserial opens and configures the port (baud, 8N1, raw); reads are driven by the event loop watching
the file descriptor, so no thread is needed. When the port errors out (USB cable pulled, pty closed)
the transport closes it and retries opening the same path with a capped exponential backoff; the
owner is told through ``on_connection`` so it can fail pending requests and resynchronise.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass

import serial

from firmware_bridge.errors import GateError

log = logging.getLogger(__name__)


class PortUnavailable(GateError, ConnectionError):
    """The serial port cannot be used (missing path, permission, device gone)."""


class PortBusy(PortUnavailable):
    """Another program holds the serial port (its exclusive lock: a second gateway, minicom, screen)."""


@dataclass(frozen=True)
class SerialSettings:
    port: str
    baudrate: int = 115200
    reconnect_min_s: float = 0.05
    reconnect_max_s: float = 0.5


def port_problem(path: str) -> str | None:
    """Why ``path`` cannot be a gate's serial port, or None if it looks usable."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return f"{path} does not exist (cable unplugged, or wrong name?)"
    except OSError as exc:
        return f"{path}: {exc.strerror}"
    if not stat.S_ISCHR(mode):
        return f"{path} is not a character device (serial ports look like /dev/ttyUSB0)"
    if not os.access(path, os.R_OK | os.W_OK):
        return f"{path} is not readable and writable by this user (add it to the dialout group)"
    return None


def open_serial(settings: SerialSettings) -> serial.Serial:
    """Open ``settings.port`` non-blocking at 8N1, or raise PortUnavailable naming the port and why."""
    try:
        return serial.Serial(settings.port, settings.baudrate, timeout=0, exclusive=True)
    except (serial.SerialException, OSError, ValueError) as exc:
        if getattr(exc, "errno", None) in (errno.EAGAIN, errno.EBUSY):  # pyserial's flock; TIOCEXCL
            raise PortBusy(f"serial port {settings.port!r} is in use by another program (it holds the "
                           "port locked)") from exc
        raise PortUnavailable(f"serial port {settings.port!r} at {settings.baudrate} baud: {exc}") from exc


class SerialTransport:
    """Byte pipe over a serial port; delivers received chunks to ``on_bytes``."""

    def __init__(self, settings: SerialSettings, on_bytes: Callable[[bytes], None],
                 on_connection: Callable[[bool], None] = lambda _up: None) -> None:
        self.settings = settings
        self._on_bytes = on_bytes
        self._on_connection = on_connection
        self._serial: serial.Serial | None = None
        self._lost = asyncio.Event()
        self._up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.reconnects = 0
        self.tx_dropped = 0
        self._resync = False

    @property
    def connected(self) -> bool:
        return self._serial is not None

    async def start(self) -> None:
        """Open the port now (raising PortUnavailable if it is not there), then keep it open."""
        self._attach(open_serial(self.settings))
        self._task = asyncio.create_task(self._supervise(), name=f"serial-{self.settings.port}")

    async def wait_connected(self, timeout: float) -> None:
        await asyncio.wait_for(self._up.wait(), timeout)

    def write(self, data: bytes) -> None:
        """Send bytes without ever blocking the event loop.

        Raises PortUnavailable while disconnected (callers retry after reconnect). If the device stops
        draining its input and the kernel buffer is full, the rest is dropped and counted, as a UART
        would overrun; a delimiter is sent first next time so the receiver resynchronises.
        """
        port = self._serial
        if port is None:
            raise PortUnavailable(f"serial port {self.settings.port!r} is disconnected")
        if self._resync:
            data = b"\x00" + data
        try:
            written = os.write(port.fd, data)
        except BlockingIOError:
            written = 0
        except OSError as exc:
            self._detach(f"write failed: {exc}")
            raise PortUnavailable(f"serial port {self.settings.port!r}: {exc}") from exc
        self._resync = written < len(data)
        if self._resync:
            self.tx_dropped += len(data) - written

    async def aclose(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._detach("closed", notify=False)

    def _attach(self, port: serial.Serial) -> None:
        self._serial = port
        self._lost.clear()
        self._up.set()
        asyncio.get_running_loop().add_reader(port.fd, self._readable)
        self._on_connection(True)

    def _detach(self, why: str, notify: bool = True) -> None:
        port, self._serial = self._serial, None
        if port is None:
            return
        if notify:
            log.warning("serial port %s lost: %s", self.settings.port, why)
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(port.fd)
        with contextlib.suppress(Exception):
            port.close()
        self._up.clear()
        self._lost.set()
        if notify:
            self._on_connection(False)

    def _readable(self) -> None:
        port = self._serial
        if port is None:
            return
        try:
            data = os.read(port.fd, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            self._detach(f"read failed: {exc}")
            return
        if not data:
            self._detach("end of file")
            return
        self._on_bytes(data)

    async def _supervise(self) -> None:
        while True:
            await self._lost.wait()
            delay = self.settings.reconnect_min_s
            while self._serial is None:
                await asyncio.sleep(delay)
                try:
                    port = open_serial(self.settings)
                except PortUnavailable as exc:
                    log.debug("reconnect: %s", exc)
                    delay = min(delay * 2, self.settings.reconnect_max_s)
                    continue
                self.reconnects += 1
                self._attach(port)
