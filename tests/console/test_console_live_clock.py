"""The console's live stream when the wall clock steps (a Pi without a real-time clock, NTP stepping it back
or forward): a real `parkgate console serve` (uvicorn) streams the lane's frame file, written here as the
daemon writes it (edge.daemon.liveview.write_private) and dated by the kernel's clock, set with os.utime as a
step would date it. Every new frame is sent once, whatever its date; an unchanged one is never sent again."""

from __future__ import annotations

import http.client
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from console_http import LOOPBACK, console_config, log_in

from edge.config import load_config
from edge.console.app import BOUNDARY
from edge.daemon import liveview
from edge.tools.console import ConsoleProcess, add_user
from edge.tools.net import free_tcp_port

OPERATOR = ("olga", "operator-pass-1")
LANE = "entry-1"
DAY_S = 86_400.0
WAIT_S = 10.0  # a new frame is streamed within one tick (1 / LIVE_FPS = 0.5 s): ample on a loaded machine
QUIET_S = 2.0  # four ticks without a new frame file: nothing is sent


@contextmanager
def stream(port: int, auth: dict[str, str]) -> Iterator[tuple[http.client.HTTPConnection,
                                                               http.client.HTTPResponse]]:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=WAIT_S)
    try:
        conn.request("GET", f"/live/{LANE}.mjpg", headers=auth)
        response = conn.getresponse()
        assert response.status == 200, response.read()
        yield conn, response
    finally:
        conn.close()


def next_frame(conn: http.client.HTTPConnection, response: http.client.HTTPResponse,
               wait_s: float = WAIT_S) -> bytes | None:
    """The next MJPEG part's JPEG, or None when none comes within ``wait_s`` (the stream is then done)."""
    assert conn.sock is not None
    conn.sock.settimeout(wait_s)
    try:
        while response.readline() != f"--{BOUNDARY}\r\n".encode():
            pass
        headers = {}
        while (line := response.readline().decode().strip()):
            name, _, value = line.partition(":")
            headers[name.lower()] = value.strip()
        return response.read(int(headers["content-length"]))
    except OSError:  # timed out (and, once timed out, the socket reads no more)
        return None


def daemon_frame(state: Path, jpeg: bytes, dated: float) -> None:
    """A new frame as the daemon writes it, its file dated ``dated`` (the kernel's clock at the write)."""
    path = liveview.frame_path(state, LANE)
    liveview.write_private(path, jpeg)
    os.utime(path, (dated, dated))


def test_the_stream_goes_on_when_the_clock_steps_back_or_forward(tmp_path: Path) -> None:
    port = free_tcp_port()
    config = console_config(tmp_path, port, "gw-live-clock", "LOT-LC")
    assert add_user(config, *OPERATOR[:1], "operator", OPERATOR[1]).returncode == 0
    state = load_config(config).gateway.state_dir
    liveview.live_dir(state).mkdir(mode=0o700)
    now = time.time()
    daemon_frame(state, b"frame-before-the-step", now)
    with ConsoleProcess(config, port, tmp_path / "console.log"):
        auth = log_in(port, *OPERATOR)
        with stream(port, auth) as (conn, response):
            first = next_frame(conn, response)
            daemon_frame(state, b"frame-after-a-step-back", now - 3 * DAY_S)  # NTP stepped back 3 days
            after_back = next_frame(conn, response)
            daemon_frame(state, b"frame-after-a-step-forward", now + DAY_S)
            after_forward = next_frame(conn, response)
            unchanged = next_frame(conn, response, QUIET_S)  # no new frame written: nothing more is sent
    assert first == b"frame-before-the-step"
    assert after_back == b"frame-after-a-step-back"  # was: nothing for the rest of the stream (600 s)
    assert after_forward == b"frame-after-a-step-forward"
    assert unchanged is None
