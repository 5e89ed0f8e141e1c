"""The `serial ports` doctor check on a real pty, a missing path and a regular file."""

from __future__ import annotations

import os
from pathlib import Path

from edge.config import parse_config
from edge.daemon.doctor_checks import check_serial_ports
from edge.doctor import Status, registered_checks
from firmware_bridge.transport import port_problem


def config_with_port(port: str):  # noqa: ANN201
    return parse_config(f'[[lanes]]\nname = "entry-1"\n[lanes.gate]\nport = "{port}"\n')


def test_a_pty_is_a_usable_port() -> None:
    master, slave = os.openpty()
    try:
        result = check_serial_ports(config_with_port(os.ttyname(slave)))
    finally:
        os.close(master)
        os.close(slave)
    assert result.status is Status.OK and "entry-1=/dev/pts/" in result.detail


def test_missing_and_non_device_ports_fail_with_a_fix(tmp_path: Path) -> None:
    result = check_serial_ports(config_with_port(str(tmp_path / "ttyUSB7")))
    assert result.status is Status.FAIL and "ttyUSB7 does not exist" in result.detail and result.fix
    plain = tmp_path / "file"
    plain.write_text("")
    assert "not a character device" in (port_problem(str(plain)) or "")


def test_doctor_discovers_the_check() -> None:
    assert "serial ports" in registered_checks()
