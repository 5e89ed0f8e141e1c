"""Independent lanes, shared ports and exit policies, with `parkgate run` as a subprocess, gate
emulators on real ptys, recorded cameras and the bundled ONNX models.

- the exit's controller is unplugged (its port missing) while the entry admits a booked car: the
  daemon reports READY, degraded, naming the exit; plugged in later, the exit serves on its own;
- two exit lanes on one Modbus relay board (one port, one bus, a relay and four inputs per lane):
  both work; a car with no entry record is let out under ``exit_policy = "known"`` when booked and
  under ``"open"`` when nobody knows it, and a stranger is refused under ``"known"``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from edge.access.decide import commitment_function
from edge.store import Booking, RentalEvent, Store
from edge.tools.demo import harness as h
from edge.tools.emulator.launch import running_emulator

LOT = "LOT-T-L"
KEY_HEX = "33" * 32
HASH = "0x" + "00" * 32
OWNER = "0x" + "11" * 20
BOOKED = h.Vehicle("booked", "AB 123-CD", seed=721)
LEAVER = h.Vehicle("leaver", "ZW 771-QP", seed=224)  # booked, parked before the installation
STRANGER = h.Vehicle("stranger", "KX 904-LM", seed=622)


def seed_bookings(store_path: Path, *vehicles: h.Vehicle) -> None:
    commit = commitment_function(bytes.fromhex(KEY_HEX), LOT)
    now_ms, hour = int(time.time() * 1000), 3_600_000
    with Store(store_path) as store:
        store.upsert_rental_event(RentalEvent("1", "1", LOT, OWNER, now_ms - 48 * hour, now_ms + 48 * hour, 1,
                                              "open", 1, HASH, 0))
        for n, vehicle in enumerate(vehicles, 1):
            store.upsert_booking(Booking(str(n), "1", "1", LOT, OWNER, commit(vehicle.plate), now_ms - hour,
                                         now_ms + hour, "verified", 1, HASH, n))


def write_config(work: Path, lanes: list[dict]) -> Path:
    (work / "plate-key").write_text(KEY_HEX + "\n")
    config = work / "parkgate.toml"
    config.write_text(h.toml_text(
        {"gateway": {"id": "gw-lanes", "lot_id": LOT, "state_dir": str(work / "state")},
         "chain": {"plate_key_file": str(work / "plate-key")}}, lanes))
    return config


def parkgate(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "edge.cli", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def gate(*args: str) -> subprocess.CompletedProcess[str]:
    return parkgate("gate", *args)


def status_of(config: Path) -> dict:
    return json.loads(parkgate("status", "--config", str(config), "--json").stdout)


def test_unplugged_exit_never_stops_the_entry(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    store = state / "parkgate.sqlite"
    seed_bookings(store, BOOKED)
    entry_cam = h.LaneCamera(tmp_path / "entry-cam", "entry-1")
    exit_cam = h.LaneCamera(tmp_path / "exit-cam", "exit-1")
    exit_port = tmp_path / "exit-1"  # where the exit's emulator links its pty once plugged in
    with running_emulator(tmp_path, name="entry-1") as entry:
        config = write_config(tmp_path, [
            {"name": "entry-1", "gate": {"port": str(entry.link), "baudrate": 115200, "pulse_ms": 3000},
             "camera": {"source": str(entry_cam.manifest), "burst_frames": 3}},
            {"name": "exit-1", "direction": "exit",
             "gate": {"port": str(exit_port), "baudrate": 115200, "pulse_ms": 3000},
             "camera": {"source": str(exit_cam.manifest), "burst_frames": 3}}])
        daemon = h.start_daemon(config, tmp_path / "daemon.log")
        try:
            ready_line = [line for line in (tmp_path / "daemon.log").read_text().splitlines()
                          if line.startswith("READY pid=")]
            admitted = h.play_visit(h.Visit(BOOKED, "entry-1", True, "booking_valid"),
                                    entry, entry_cam, store)
            degraded = h.wait_until(lambda: status_of(config).get("degraded"), 5)
            human = parkgate("status", "--config", str(config))
            with running_emulator(tmp_path, name="exit-1") as exit_gate:  # plugged in: serves on its own
                recovered = h.wait_until(lambda: not status_of(config).get("degraded"), 15)
                left = h.play_visit(h.Visit(BOOKED, "exit-1", True, "session_exit"),
                                    exit_gate, exit_cam, store)
        finally:
            assert daemon.stop() == 0
    assert ready_line == [ready_line[0]] and "lanes=1 degraded=exit-1" in ready_line[0]
    assert admitted.held, (admitted.rows, admitted.error)
    assert list(degraded) == ["exit-1"] and "gate not reachable" in degraded["exit-1"]
    assert human.returncode == 0 and "DEGRADED: 1 lane(s) not serving: exit-1" in human.stdout
    assert "lane exit-1: NOT SERVING" in human.stdout and "lane entry-1: phase" in human.stdout
    assert recovered, "the exit lane did not start serving once its controller was plugged in"
    assert left.held, (left.rows, left.error)


def test_two_exit_lanes_on_one_modbus_board_with_their_exit_policies(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    store = state / "parkgate.sqlite"
    seed_bookings(store, LEAVER)
    cams = {name: h.LaneCamera(tmp_path / name, name) for name in ("exit-known", "exit-open")}
    with running_emulator(tmp_path, "--modbus", "--gates", "2", "--baud", "19200", name="board") as board:
        gate_1 = {"modbus_open_coil": 1, "modbus_loop_input": 4, "modbus_safety_input": 5,
                  "modbus_open_limit_input": 6, "modbus_closed_limit_input": 7}
        config = write_config(tmp_path, [
            {"name": name, "direction": "exit", "exit_policy": policy,
             "gate": {"driver": "modbus-rtu", "port": str(board.link), "baudrate": 19200, "pulse_ms": 2000,
                      **wiring},
             "camera": {"source": str(cams[name].manifest), "burst_frames": 3}}
            for name, policy, wiring in (("exit-known", "known", {}), ("exit-open", "open", gate_1))])
        daemon = h.start_daemon(config, tmp_path / "daemon.log")
        try:
            known, opened = board.gate(0), board.gate(1)
            booked_out = h.play_visit(h.Visit(LEAVER, "exit-known", True, "booking_valid,passback_violation"),
                                      known, cams["exit-known"], store)
            stranger_kept = h.play_visit(h.Visit(STRANGER, "exit-known", False, "no_booking"),
                                         known, cams["exit-known"], store)
            stranger_out = h.play_visit(h.Visit(STRANGER, "exit-open", True, "exit_open"),
                                        opened, cams["exit-open"], store)
            gates = board.state()["gates"]
            lane = ("--lane", "exit-open", "--config", str(config))
            board.wait_for(lambda s: not s["coils"][1], what="gate 1's pulse over")
            held = gate("hold", *lane, "--reason", "event traffic")
            time.sleep(1.5)  # past the 1 s flash: the daemon refreshes it
            coils_held = board.state()["coils"][:2]
            released = gate("release", *lane, "--reason", "event over")
            coils_released = board.state()["coils"][:2]
        finally:
            assert daemon.stop() == 0
    for result in (booked_out, stranger_kept, stranger_out):
        assert result.held, (result.visit, result.rows, result.error)
    assert booked_out.main_row["kind"] == "check_out" and booked_out.main_row["booking_id"] == "1"
    assert stranger_out.main_row["kind"] == "check_out" and stranger_out.main_row["booking_id"] is None
    assert [g["open_commands"] for g in gates] == [1, 1]  # each lane pulsed its own relay, once
    assert held.returncode == 0 and released.returncode == 0, (held.stderr, released.stderr)
    assert coils_held == [False, True] and coils_released == [False, False]
