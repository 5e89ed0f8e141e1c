"""`parkgate doctor` check: every lane's gate port exists, is a terminal device and is read/writable.

The port is not opened: the running daemon holds it exclusively, and a doctor run must not disturb it.
"""

from __future__ import annotations

import os
import stat

from edge.config import Config
from edge.doctor import CheckResult, register_check


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


@register_check("serial ports")
def check_serial_ports(config: Config) -> CheckResult:
    ports = {lane.gate.port: lane.name for lane in config.lanes}
    problems = [f"lane {lane}: {problem}" for port, lane in ports.items() if (problem := port_problem(port))]
    if problems:
        return CheckResult.fail("; ".join(problems), "plug in the gate controller or fix lanes[].gate.port")
    return CheckResult.ok(", ".join(f"{lane}={port}" for port, lane in ports.items()))
