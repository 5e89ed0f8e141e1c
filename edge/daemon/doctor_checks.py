"""`parkgate doctor` checks of the daemon's gates: every lane's port exists, is a terminal device and
is read/writable; and of its clock: the wall clock is not behind the newest time the store has seen.

The port is not opened: the running daemon holds it exclusively, and a doctor run must not disturb it.
"""

from __future__ import annotations

import time

from edge.clock import BUILD_FLOOR_MS, ClockReading, describe_behind, wall_clock_ms
from edge.config import Config
from edge.doctor import CheckResult, register_check
from edge.store.integrity import stored_clock_floor
from firmware_bridge.transport import port_problem


@register_check("serial ports")
def check_serial_ports(config: Config) -> CheckResult:
    ports = {lane.gate.port: lane.name for lane in config.lanes}
    problems = [f"lane {lane}: {problem}" for port, lane in ports.items() if (problem := port_problem(port))]
    if problems:
        return CheckResult.fail("; ".join(problems), "plug in the gate controller or fix lanes[].gate.port")
    return CheckResult.ok(", ".join(f"{lane}={port}" for port, lane in ports.items()))


@register_check("clock")
def check_clock(config: Config) -> CheckResult:
    """The wall clock against the sanity floor (edge.clock): the build date and the store's floor."""
    floor = max(BUILD_FLOOR_MS, stored_clock_floor(config.store_path))
    reading = ClockReading(wall_clock_ms(), floor, config.clock.behind_tolerance_s * 1000)
    wall = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(reading.wall_ms / 1000))
    if reading.trusted:
        return CheckResult.ok(f"wall clock {wall}, not behind the newest time this gateway has seen")
    return CheckResult.fail(f"wall clock {wall} is {describe_behind(reading.behind_ms)} behind the newest "
                            f"time this gateway has seen (untrusted_time = {config.clock.untrusted_time!r})",
                            "fix NTP (timedatectl status; systemctl status systemd-timesyncd)")
