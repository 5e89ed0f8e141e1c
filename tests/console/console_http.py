"""Plain HTTP to a console subprocess on loopback (http.client): a logged-in user's headers, and one request
sent by many clients at the same moment (each on a connection opened beforehand, all released together by
a barrier), as a script hammering the console would."""

from __future__ import annotations

import http.client
import re
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from edge.tools.console import console_section
from edge.tools.demo import harness as h

LOOPBACK = "127.0.0.1"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def console_config(directory: Path, port: int, gateway_id: str, lot_id: str, **console: object) -> Path:
    """A config (``directory``/parkgate.toml) for a console on ``port`` over a new state dir, one lane."""
    state = directory / "state"
    state.mkdir()
    config = directory / "parkgate.toml"
    config.write_text(h.toml_text(
        {"gateway": {"id": gateway_id, "lot_id": lot_id, "state_dir": str(state)},
         "console": console_section(port, **console)},
        [{"name": "entry-1", "gate": {"port": "/dev/null"}}]))
    return config


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, list[str]]  # lower-case names
    body: str


def send(port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
         tls: ssl.SSLContext | None = None) -> Reply:
    """One request on its own connection (HTTPS with ``tls``)."""
    conn = (http.client.HTTPSConnection(LOOPBACK, port, context=tls, timeout=60) if tls else
            http.client.HTTPConnection(LOOPBACK, port, timeout=60))
    try:
        conn.request(method, path, body=body or None, headers=headers or {})
        response = conn.getresponse()
        found: dict[str, list[str]] = {}
        for key, value in response.getheaders():
            found.setdefault(key.lower(), []).append(value)
        return Reply(response.status, found, response.read().decode())
    finally:
        conn.close()


def cookie(reply: Reply, name: str) -> str:
    """``name=value`` of a cookie the reply sets."""
    return next(c for c in reply.headers["set-cookie"] if c.startswith(name + "=")).split(";")[0]


def csrf_of(reply: Reply) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', reply.body)
    assert match, reply.body
    return match.group(1)


def login_form(port: int) -> tuple[dict[str, str], str]:
    """The login form's cookie header and its CSRF token, as a browser has them after GET /login."""
    page = send(port, "GET", "/login")
    return {**FORM, "Cookie": cookie(page, "pg_login")}, csrf_of(page)


def log_in(port: int, user: str, password: str) -> dict[str, str]:
    """The Cookie header of a new session of ``user``."""
    headers, token = login_form(port)
    reply = send(port, "POST", "/login", f"csrf={token}&user={user}&password={password}".encode(), headers)
    assert reply.status == 303 and reply.headers["location"] == ["/"], reply
    return {"Cookie": cookie(reply, "pg_session")}


@contextmanager
def sent_together(port: int, count: int, method: str, path: str, body: bytes = b"",
                  headers: dict[str, str] | None = None) -> Iterator[list[http.client.HTTPResponse]]:
    """``count`` copies of a request sent at the same moment; their responses with the status and headers
    read, the bodies left to the caller (a stream never ends); every connection closed at exit."""
    conns = [http.client.HTTPConnection(LOOPBACK, port, timeout=60) for _ in range(count)]
    for conn in conns:
        conn.connect()
    barrier = threading.Barrier(count)
    responses: list[http.client.HTTPResponse | None] = [None] * count

    def one(i: int) -> None:
        barrier.wait(30)
        conns[i].request(method, path, body=body or None, headers=headers or {})
        responses[i] = conns[i].getresponse()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert all(r is not None for r in responses), "a request got no answer"
        yield [r for r in responses if r is not None]
    finally:
        for conn in conns:
            conn.close()


def abandoned(port: int, count: int, method: str, path: str, headers: dict[str, str] | None = None) -> None:
    """``count`` clients that send a request and leave at once, before any answer."""
    for _ in range(count):
        conn = http.client.HTTPConnection(LOOPBACK, port, timeout=60)
        try:
            conn.request(method, path, headers=headers or {})
        finally:
            conn.close()
