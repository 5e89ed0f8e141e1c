"""sd_notify: tell systemd we are ready, alive (watchdog), what we are doing, and that we stop.

Speaks the datagram protocol of sd_notify(3) directly (no libsystemd binding): one AF_UNIX
SOCK_DGRAM message of newline-separated KEY=VALUE lines to $NOTIFY_SOCKET, a filesystem path or an
abstract-namespace name written with a leading '@'. Every function is a no-op returning False when
$NOTIFY_SOCKET is unset (running by hand, in tests, in the demo), so callers never need to check.
Failures to send are logged, never raised: a missing notification must not take the gate down
(the watchdog will restart us if we really are stuck).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


def _address(env: Mapping[str, str]) -> str | bytes | None:
    path = env.get("NOTIFY_SOCKET", "")
    if not path:
        return None
    if path.startswith("@"):
        return b"\0" + path[1:].encode()
    return path


def notify(message: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``message`` (e.g. ``"READY=1\\nSTATUS=serving"``); True when it was sent."""
    address = _address(os.environ if env is None else env)
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message.encode(), address)
        return True
    except OSError as exc:
        log.warning("sd_notify to %r failed: %s", address, exc)
        return False


def _one_line(text: str) -> str:
    return " ".join(text.split())


def ready(status: str = "", env: Mapping[str, str] | None = None) -> bool:
    return notify("READY=1" + (f"\nSTATUS={_one_line(status)}" if status else ""), env)


def status(text: str, env: Mapping[str, str] | None = None) -> bool:
    return notify(f"STATUS={_one_line(text)}", env)


def watchdog(env: Mapping[str, str] | None = None) -> bool:
    return notify("WATCHDOG=1", env)


def extend_start_timeout(seconds: float, why: str, env: Mapping[str, str] | None = None) -> bool:
    """Ask systemd for ``seconds`` more before start-up counts as failed (EXTEND_TIMEOUT_USEC), saying why."""
    return notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}\nSTATUS={_one_line(why)}", env)


def stopping(env: Mapping[str, str] | None = None) -> bool:
    return notify("STOPPING=1", env)


def watchdog_interval_s(env: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """How often to send WATCHDOG=1: half of $WATCHDOG_USEC, as sd_watchdog_enabled(3) advises.

    None when the watchdog is off, the value is not a positive integer, or $WATCHDOG_PID names
    another process (the variables were inherited from a parent).
    """
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    owner = env.get("WATCHDOG_PID", "")
    if owner and owner != str(os.getpid() if pid is None else pid):
        return None
    return int(usec) / 2_000_000
