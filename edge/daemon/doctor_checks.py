"""`parkgate doctor` check of the daemon's gates: every lane's port exists, is a terminal device and
is read/writable.

The port is not opened: the running daemon holds it exclusively, and a doctor run must not disturb it.
"""

from __future__ import annotations

from edge.config import Config
from edge.doctor import CheckResult, register_check
from firmware_bridge.transport import port_problem


@register_check("serial ports")
def check_serial_ports(config: Config) -> CheckResult:
    ports = {lane.gate.port: lane.name for lane in config.lanes}
    problems = [f"lane {lane}: {problem}" for port, lane in ports.items() if (problem := port_problem(port))]
    if problems:
        return CheckResult.fail("; ".join(problems), "plug in the gate controller or fix lanes[].gate.port")
    return CheckResult.ok(", ".join(f"{lane}={port}" for port, lane in ports.items()))
