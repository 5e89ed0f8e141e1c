"""The daemon's local control socket: manual gate operations while `parkgate run` holds the ports.

A unix stream socket at ``<state_dir>/control.sock`` (mode 0660: the daemon's user and group; the
state dir's own mode decides who reaches it). One JSON request per connection, one line::

    {"action": "open" | "hold" | "release", "lane": "exit-1", "reason": "visitor without plate"}
    {"action": "status", "lane": "exit-1"}
    {"action": "watch", "lane": "exit-1"}          (lane optional: every lane)

answered by one JSON line (``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``), or for
``watch`` by one line per input change until the client hangs up. The kernel's peer credentials
(pid, uid, gid) of the caller are recorded with every operation (``manual_actions`` in the store,
with the reason, the result and the camera's read and evidence at that moment).

Requests are parsed by the pure :func:`parse_request`; bad input gets an error naming what is allowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pwd
import socket
import stat
import struct
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
CONTROL_SOCKET = "control.sock"
SOCKET_MODE = 0o660
MAX_REQUEST = 4096  # bytes of one request line
MAX_REASON = 200
GATE_ACTIONS = ("open", "hold", "release")
ACTIONS = (*GATE_ACTIONS, "status", "watch")
MAX_UNIX_PATH = 107  # sun_path is 108 bytes with its NUL


def socket_path(state_dir: Path) -> Path:
    return state_dir / CONTROL_SOCKET


@dataclass(frozen=True)
class Peer:
    """Who is on the other end, as the kernel says (SO_PEERCRED), not as the client claims."""

    pid: int
    uid: int
    gid: int

    @property
    def who(self) -> str:
        try:
            name = pwd.getpwuid(self.uid).pw_name
        except KeyError:
            name = "?"
        return f"{name} (uid {self.uid}, pid {self.pid})"


def peer_of(sock: socket.socket) -> Peer:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return Peer(*struct.unpack("3i", creds))


@dataclass(frozen=True)
class Request:
    action: str
    lane: str | None
    reason: str = ""


def parse_request(line: bytes, lanes: Sequence[str]) -> Request:
    """A request line; ValueError naming the bad field and what is allowed."""
    try:
        data = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("request is not one line of JSON; allowed: "
                         '{"action": "open", "lane": "NAME", "reason": "TEXT"}') from None
    if not isinstance(data, dict):
        raise ValueError("request must be a JSON object")
    unknown = sorted(set(data) - {"action", "lane", "reason"})
    if unknown:
        raise ValueError(f"unknown request keys {unknown}; allowed: action, lane, reason")
    action = data.get("action")
    if action not in ACTIONS:
        raise ValueError(f"action {action!r} unknown; allowed: {', '.join(ACTIONS)}")
    lane = data.get("lane")
    if lane is None and action != "watch":
        raise ValueError(f"{action} needs a lane; lanes: {', '.join(lanes)}")
    if lane is not None and lane not in lanes:
        raise ValueError(f"lane {lane!r} unknown; lanes: {', '.join(lanes)}")
    reason = data.get("reason", "")
    if not isinstance(reason, str) or len(reason) > MAX_REASON or not reason.isprintable():
        raise ValueError(f"reason must be printable text of at most {MAX_REASON} characters")
    if action in GATE_ACTIONS and not reason.strip():
        raise ValueError(f"{action} needs a reason (it is audited): --reason TEXT")
    return Request(action, lane, reason.strip())


Operate = Callable[[Request, Peer], Awaitable[dict[str, Any]]]
Watch = Callable[[str | None], AsyncGenerator[dict[str, Any], None]]


class ControlServer:
    """Serves the socket on the daemon's loop; ``operate`` answers gate/status requests, ``watch``
    streams a lane's input changes."""

    def __init__(self, path: Path, lanes: Sequence[str], operate: Operate, watch: Watch) -> None:
        self.path = path
        self.lanes = tuple(lanes)
        self._operate = operate
        self._watch = watch
        self._server: asyncio.Server | None = None

    async def start(self) -> ControlServer:
        if len(os.fsencode(self.path)) > MAX_UNIX_PATH:
            raise OSError(f"control socket path {self.path} is longer than {MAX_UNIX_PATH} bytes")
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.lstat(self.path).st_mode):
                os.unlink(self.path)  # left by a daemon that died; this one holds the gates now
        old_umask = os.umask(0o117)  # no window in which the socket is open to others
        try:
            self._server = await asyncio.start_unix_server(self._session, self.path, limit=MAX_REQUEST)
        finally:
            os.umask(old_umask)
        os.chmod(self.path, SOCKET_MODE)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            peer = peer_of(writer.get_extra_info("socket"))
            try:
                line = await asyncio.wait_for(reader.readline(), 5.0)
                request = parse_request(line, self.lanes)
            except (ValueError, TimeoutError) as exc:  # ValueError: a bad request, or a line over the limit
                await _send(writer, {"ok": False, "error": str(exc) or "no request within 5 s"})
                return
            if request.action == "watch":
                changes = self._watch(request.lane)
                try:
                    async for item in changes:
                        await _send(writer, item)
                finally:
                    await changes.aclose()  # unsubscribe now, not when the generator is collected
                return
            await _send(writer, await self._operate(request, peer))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client hung up
        except Exception:  # noqa: BLE001 - one bad session must never reach the gates
            log.exception("control socket session failed")
        finally:
            writer.close()


async def _send(writer: asyncio.StreamWriter, item: dict[str, Any]) -> None:
    writer.write(json.dumps(item, sort_keys=True).encode() + b"\n")
    await writer.drain()


# -- client side (the CLI) ---------------------------------------------------------------------------

class NoDaemon(ConnectionError):
    """Nothing answers on the control socket (the daemon is not running with this config)."""


def _connect(path: Path, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(os.fspath(path))
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        sock.close()
        raise NoDaemon(f"no daemon answers at {path} ({exc.strerror})") from None
    except OSError:
        sock.close()
        raise
    return sock


def request(path: Path, payload: dict[str, Any], timeout: float = 15.0) -> dict[str, Any]:
    """One request, its one reply."""
    with _connect(path, timeout) as sock, sock.makefile("rwb") as stream:
        stream.write(json.dumps(payload).encode() + b"\n")
        stream.flush()
        line = stream.readline()
    if not line:
        raise ConnectionError(f"the daemon closed {path} without an answer")
    return json.loads(line)


def stream(path: Path, payload: dict[str, Any]) -> Generator[dict[str, Any], None, None]:
    """A ``watch`` request's lines, until the daemon stops or the caller stops iterating."""
    with _connect(path, 5.0) as sock:
        sock.sendall(json.dumps(payload).encode() + b"\n")
        sock.settimeout(None)
        with sock.makefile("rb") as lines:
            for line in lines:
                yield json.loads(line)
