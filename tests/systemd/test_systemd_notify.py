"""sd_notify over a real unix datagram socket (path and abstract namespace)."""

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge import notify


@pytest.fixture()
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, dict[str, str]]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify.sock"
    sock.bind(str(path))
    sock.settimeout(5)
    yield sock, {"NOTIFY_SOCKET": str(path)}
    sock.close()


def test_messages_reach_the_socket(listener) -> None:
    sock, env = listener
    assert notify.ready("serving 2 lanes", env)
    assert sock.recv(4096) == b"READY=1\nSTATUS=serving 2 lanes"
    assert notify.status("lane entry-1:\n gate fault", env)
    assert sock.recv(4096) == b"STATUS=lane entry-1: gate fault"
    assert notify.watchdog(env) and sock.recv(4096) == b"WATCHDOG=1"
    assert notify.stopping(env) and sock.recv(4096) == b"STOPPING=1"
    assert notify.extend_start_timeout(15, "waiting for gate /dev/ttyUSB0", env)
    assert sock.recv(4096) == b"EXTEND_TIMEOUT_USEC=15000000\nSTATUS=waiting for gate /dev/ttyUSB0"


def test_abstract_namespace_socket() -> None:
    name = f"parkgate-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(5)
        assert notify.ready(env={"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(4096) == b"READY=1"


def test_noop_without_socket_and_no_crash_when_nobody_listens(tmp_path: Path) -> None:
    assert notify.ready(env={}) is False
    assert notify.watchdog(env={"NOTIFY_SOCKET": str(tmp_path / "absent.sock")}) is False


@pytest.mark.parametrize("env, expected", [
    ({}, None),
    ({"WATCHDOG_USEC": "30000000"}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "-5"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
])
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert notify.watchdog_interval_s(env) == expected
