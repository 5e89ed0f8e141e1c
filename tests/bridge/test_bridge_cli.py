"""`parkgate gate status|open|watch` as an installer runs them, against the emulator on a pty."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from bridge_harness import running_emulator


def gate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge.cli", "gate", *args], capture_output=True, text=True,
                          timeout=30)


def test_status_open_watch_against_the_emulator(tmp_path: Path) -> None:
    with running_emulator(tmp_path) as emulator:
        port = str(emulator.link)
        status = gate("status", "--port", port)
        assert status.returncode == 0, status.stderr
        assert status.stdout.startswith("position=CLOSED presence=0 safety=0 held=0 faults=none opens=0")
        opened = gate("open", "--port", port, "--pulse-ms", "400")
        assert opened.returncode == 0 and "acknowledged" in opened.stdout
        assert emulator.state()["opens"] == 1
        emulator.wait_for(lambda s: s["position"] == "CLOSED" and not s["output"], what="closed again")
        emulator.command("presence 1")
        watch = subprocess.Popen([sys.executable, "-m", "edge.cli", "gate", "watch", "--port", port,
                                  "--seconds", "3"], stdout=subprocess.PIPE, text=True)
        assert watch.stdout is not None
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z status position=", watch.stdout.readline())
        emulator.command("safety 1")
        assert re.fullmatch(r"\S+Z safety 1", watch.stdout.readline().strip())
        watch.kill()
        watch.wait()


def test_missing_port_fails_clearly(tmp_path: Path) -> None:
    out = gate("status", "--port", str(tmp_path / "ttyUSB9"))
    assert out.returncode == 2
    assert "ttyUSB9" in out.stderr and "No such file" in out.stderr


def test_bad_pulse_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    with running_emulator(tmp_path) as emulator:
        out = gate("open", "--port", str(emulator.link), "--pulse-ms", "5")
        assert out.returncode == 1
        assert "pulse_ms=5 out of range 50..30000" in out.stderr
        assert emulator.state()["opens"] == 0


def test_refusal_names_the_fault_not_the_ack(tmp_path: Path) -> None:
    with running_emulator(tmp_path) as emulator:
        emulator.command("fault motor 1")
        out = gate("open", "--port", str(emulator.link))
    assert out.returncode == 1
    assert "open refused by the controller: FAULT: an active fault forbids the command (MOTOR)" in out.stderr
    assert "Ack(" not in out.stderr


def test_modbus_unit_and_coil_pick_the_lanes_relay_on_a_shared_board(tmp_path: Path) -> None:
    with running_emulator(tmp_path, "--modbus", "--gates", "2") as board:
        port = ("--port", str(board.link), "--driver", "modbus-rtu")
        opened = gate("open", *port, "--unit", "1", "--coil", "1", "--pulse-ms", "300")
        wrong_unit = gate("status", *port, "--unit", "7")
        gates = board.state()["gates"]
    assert opened.returncode == 0, opened.stderr
    assert [g["open_commands"] for g in gates] == [0, 1]
    assert wrong_unit.returncode == 1 and "relay board 7" in wrong_unit.stderr
    assert gate("status", "--port", "/dev/null", "--unit", "2").returncode == 1  # serial driver: no units


def test_baud_unit_and_coil_default_to_the_lanes_config(tmp_path: Path) -> None:
    import argparse

    from edge.cli.gate import direct_target
    from edge.config import parse_config

    args = argparse.Namespace(port=None, driver=None, baud=None, unit=None, coil=None, pulse_ms=None)
    assert direct_target(args, None).baud == 9600  # the config's default, not 115200
    lane = parse_config('[[lanes]]\nname = "x"\n[lanes.gate]\ndriver = "modbus-rtu"\nport = "/dev/ttyS0"\n'
                        "baudrate = 19200\nmodbus_unit = 3\nmodbus_open_coil = 2\npulse_ms = 700").lanes[0]
    target = direct_target(args, lane)
    assert (target.driver, target.port, target.baud, target.pulse_ms) == ("modbus-rtu", "/dev/ttyS0", 19200,
                                                                          700)
    wiring = target.relay_map
    assert wiring is not None and (wiring.device_id, wiring.open_relay) == (3, 2)
    args.unit, args.baud = 4, 9600
    assert direct_target(args, lane).relay_map.device_id == 4 and direct_target(args, lane).baud == 9600


def test_version() -> None:
    out = subprocess.run([sys.executable, "-m", "edge.cli", "--version"], capture_output=True, text=True,
                         timeout=30, check=False)
    assert out.returncode == 0 and re.fullmatch(r"parkgate \d+\.\d+\.\d+\S*\n", out.stdout)
