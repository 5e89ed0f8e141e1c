"""The daemon's local control socket: manual gate operations while `parkgate run` holds the ports.

A unix stream socket at ``<state_dir>/control.sock`` (mode 0660: the daemon's user and group; the
state dir's own mode decides who reaches it). One JSON request per connection, one line::

    {"action": "open" | "hold" | "release", "lane": "exit-1", "reason": "visitor without plate"}
    {"action": "open", "lane": "exit-1", "reason": "...", "operator": "console:olga"}  (acting for a user)
    {"action": "status", "lane": "exit-1"}
    {"action": "watch", "lane": "exit-1"}          (lane optional: every lane)

answered by one JSON line (``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``), or for
``watch`` by one line per input change until the client hangs up. The kernel's peer credentials
(pid, uid, gid) of the caller are recorded with every operation (``manual_actions`` in the store,
with the reason, the result and the camera's read and evidence at that moment). A client that acts for
a user of its own (the web console for its logged-in user) names that user in ``operator``: the audit's
operator is then ``console:olga via parkgate (uid 998, pid 4242)``, the kernel's word kept beside it.

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
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
CONTROL_SOCKET = "control.sock"
SOCKET_MODE = 0o660
MAX_REQUEST = 4096  # bytes of one request line
REQUEST_WAIT_S = 5.0
MAX_REASON = 200
MAX_OPERATOR = 64
GATE_ACTIONS = ("open", "hold", "release")
ACTIONS = (*GATE_ACTIONS, "status", "watch")
MAX_UNIX_PATH = 107  # sun_path is 108 bytes with its NUL
MAX_SESSIONS = 16  # connections served at once (watchers included); more are answered "busy"


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
    operator: str = ""  # the user a client acts for, as it says (the peer's credentials are the kernel's)

    def who(self, peer: Peer) -> str:
        """The audit's operator: the user the client acts for (if it names one) via the peer."""
        return f"{self.operator} via {peer.who}" if self.operator else peer.who


def parse_request(line: bytes, lanes: Sequence[str]) -> Request:
    """A request line; ValueError naming the bad field and what is allowed."""
    try:
        data = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("request is not one line of JSON; allowed: "
                         '{"action": "open", "lane": "NAME", "reason": "TEXT"}') from None
    if not isinstance(data, dict):
        raise ValueError("request must be a JSON object")
    unknown = sorted(set(data) - {"action", "lane", "reason", "operator"})
    if unknown:
        raise ValueError(f"unknown request keys {unknown}; allowed: action, lane, reason, operator")
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
    operator = data.get("operator", "")
    if not isinstance(operator, str) or len(operator) > MAX_OPERATOR or not operator.isprintable():
        raise ValueError(f"operator must be printable text of at most {MAX_OPERATOR} characters")
    return Request(action, lane, reason.strip(), operator.strip())


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
        self.sessions = 0

    async def start(self) -> ControlServer:
        if len(os.fsencode(self.path)) > MAX_UNIX_PATH:
            raise OSError(f"control socket path {self.path} is longer than {MAX_UNIX_PATH} bytes")
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.lstat(self.path).st_mode):
                _remove_stale(self.path)
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
        self.sessions += 1
        try:
            if self.sessions > MAX_SESSIONS:
                await _send(writer, {"ok": False, "error": f"busy: {MAX_SESSIONS} sessions already open"})
                return
            peer = peer_of(writer.get_extra_info("socket"))
            try:
                line = await asyncio.wait_for(reader.readline(), REQUEST_WAIT_S)
            except ValueError:  # asyncio's line limit
                await _send(writer, {"ok": False, "error": f"request longer than {MAX_REQUEST} bytes"})
                return
            except TimeoutError:
                await _send(writer, {"ok": False, "error": f"no request within {REQUEST_WAIT_S:.0f} s"})
                return
            try:
                request = parse_request(line, self.lanes)
            except ValueError as exc:
                await _send(writer, {"ok": False, "error": str(exc)})
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
            self.sessions -= 1
            writer.close()


def _remove_stale(path: Path) -> None:
    """Remove a socket left by a daemon that died; OSError if a daemon still answers there."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        try:
            probe.connect(os.fspath(path))
        except (ConnectionRefusedError, FileNotFoundError):
            os.unlink(path)
            return
    raise OSError(f"another daemon answers at {path}; not taking its control socket")


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
    with _connect(path, timeout) as sock:
        # The daemon may answer (and hang up) before reading all of an oversized request: keep its answer.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(json.dumps(payload).encode() + b"\n")
        with sock.makefile("rb") as stream:
            try:
                line = stream.readline()
            except ConnectionResetError:
                line = b""
    if not line:
        raise ConnectionError(f"the daemon closed {path} without an answer")
    return json.loads(line)


def stream(path: Path, payload: dict[str, Any], seconds: float | None = None
           ) -> Generator[dict[str, Any], None, None]:
    """A ``watch`` request's lines, until the daemon stops, ``seconds`` pass or the caller stops."""
    deadline = None if seconds is None else time.monotonic() + seconds
    with _connect(path, 5.0) as sock:
        sock.sendall(json.dumps(payload).encode() + b"\n")
        pending = b""
        while deadline is None or time.monotonic() < deadline:
            sock.settimeout(None if deadline is None else max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                return
            if not chunk:
                return
            *lines, pending = (pending + chunk).split(b"\n")
            if len(pending) > MAX_REQUEST * 16:
                raise ValueError(f"the daemon sent a line over {MAX_REQUEST * 16} bytes")
            for line in lines:
                yield json.loads(line)
