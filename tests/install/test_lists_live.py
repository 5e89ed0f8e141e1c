"""Allow/deny lists and offline bookings changed while the daemon runs (`parkgate list`, `parkgate booking`
as a user types them, in their own processes): each change applies from the next car, no restart.

Real parts: `parkgate run` as a subprocess, the gate emulator on a pty, a recorded camera read by the
bundled models, the SQLite store; no chain, no broker (an offline lot)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge.tools.demo import harness as h
from edge.tools.emulator.launch import running_emulator

LANE = "entry-1"
VISITOR = h.Vehicle("visitor", "KX 904-LM", seed=622)
GUEST = h.Vehicle("guest", "AB 123-CD", seed=721)
BANNED = h.Vehicle("banned", "ZW 771-QP", seed=224)
LATER = h.Vehicle("later", "TR 552-GH", seed=223)


@pytest.fixture(scope="module")
def lane(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("lists")
    camera = h.LaneCamera(work / "camera", LANE)
    with running_emulator(work, name=LANE) as emulator:
        config = work / "parkgate.toml"
        config.write_text(h.toml_text(
            {"gateway": {"id": "lists-gw", "lot_id": "LOT-LISTS", "state_dir": str(work / "state")}},
            [{"name": LANE, "gate": {"port": str(emulator.link), "baudrate": 115200, "pulse_ms": 3000},
              "camera": {"source": str(camera.manifest), "burst_frames": 3}}]))
        daemon = h.start_daemon(config, work / "daemon.log")
        try:
            yield {"config": config, "emulator": emulator, "camera": camera, "daemon": daemon,
                   "store": work / "state" / "parkgate.sqlite"}
        finally:
            daemon.stop()


def parkgate(lane: dict, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "edge.cli", *args, "--config", str(lane["config"])],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def visit(lane: dict, vehicle: h.Vehicle, expect_open: bool, reason: str) -> None:
    result = h.play_visit(h.Visit(vehicle, LANE, expect_open, reason), lane["emulator"], lane["camera"],
                          lane["store"])
    assert result.held, (vehicle.name, result.opened, result.rows, result.error, lane["daemon"].log_tail())


def test_an_allow_list_entry_applies_to_the_next_car_without_a_restart(lane):
    visit(lane, VISITOR, False, "no_booking")
    assert "applies from the next vehicle" in parkgate(lane, "list", "allow", "add", VISITOR.plate,
                                                       "--note", "plumber")
    visit(lane, VISITOR, True, "allow_listed")
    assert lane["daemon"].alive()
    # one structured journal line per vehicle, plate masked
    lines = [line for line in lane["daemon"].log_path.read_text().splitlines() if " pass lane=" in line
             and "plate=KX***M" in line]
    assert len(lines) == 2, lines
    assert "decision=deny reason=no_booking" in lines[0] and "gate=shut" in lines[0]
    assert "decision=allow reason=allow_listed" in lines[1] and "gate=opened latency_ms=" in lines[1]
    assert "confidence=0." in lines[1] or "confidence=1.00" in lines[1]
    assert "KX904LM" not in lane["daemon"].log_path.read_text()
    allowed = [json.loads(line) for line in parkgate(lane, "events", "--reason", "allow_listed", "--json")
               .splitlines()]
    assert [(e["kind"], e["plate_masked"], e["lane"]) for e in allowed] == [("check_in", "KX***M", LANE)]
    denied = parkgate(lane, "events", "--kind", "denied", "--lane", LANE, "--since", "2020-01-01")
    assert "KX***M" in denied and "no_booking" in denied and "allow_listed" not in denied
    shown = parkgate(lane, "list", "allow", "show")
    assert "KX904LM" in shown and "plumber" in shown and "active" in shown


def test_an_entry_not_yet_valid_does_not_admit(lane):
    parkgate(lane, "list", "allow", "add", LATER.plate, "--from", "2099-01-01")
    visit(lane, LATER, False, "no_booking")
    assert "future" in parkgate(lane, "list", "allow", "show")


def test_an_offline_booking_admits_and_a_deny_entry_refuses_until_removed(lane):
    for vehicle in (GUEST, BANNED):
        added = parkgate(lane, "booking", "add", "--plate", vehicle.plate, "--from", "2020-01-01",
                         "--until", "2099-01-01")
        assert added.startswith("local-") and vehicle.plate.replace(" ", "") not in added  # masked
    visit(lane, GUEST, True, "booking_valid")
    parkgate(lane, "list", "deny", "add", BANNED.plate)
    visit(lane, BANNED, False, "deny_listed")
    parkgate(lane, "list", "deny", "remove", BANNED.plate)
    visit(lane, BANNED, True, "booking_valid")


def test_bad_entries_and_times_are_refused_with_what_is_allowed(lane):
    def refused(*args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "edge.cli", *args, "--config", str(lane["config"])],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 1, out.stdout + out.stderr
        return out.stderr

    assert "looks like a commitment but is not 0x + 64 hex digits" in refused("list", "deny", "add", "0x12")
    assert "allowed: A-Z 0-9" in refused("list", "allow", "add", "AB!12")
    assert "allowed: ISO 8601" in refused("list", "allow", "add", "AB12", "--until", "tomorrow")
    assert "--until: bad value" in refused("list", "allow", "add", "AB12", "--from", "2030-01-02",
                                           "--until", "2030-01-01")
    assert "no stored entry" in refused("list", "deny", "remove", "QQ999")
    # a bound no page can show (the console's list page was a 500): the range the console also keeps
    assert ("--until '9999-12-31' is out of range; allowed: a time from 2000-01-01 up to 2100-01-01 (UTC)"
            in refused("list", "allow", "add", "AB12", "--until", "9999-12-31"))


def test_booking_add_is_refused_on_a_chain_synced_lot(tmp_path: Path) -> None:
    config = tmp_path / "chain.toml"
    config.write_text(f'[gateway]\nstate_dir = "{tmp_path}"\n[chain]\nenabled = true\n'
                      'contract_address = "0x' + "1" * 40 + '"\nkeystore = "k"\npassword_file = "p"\n'
                      'plate_key_file = "pk"\n')
    out = subprocess.run([sys.executable, "-m", "edge.cli", "booking", "add", "--plate", "AB123", "--from",
                          "2030-01-01", "--until", "2030-01-02", "--config", str(config)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "bookings come from the rental contract" in out.stderr


def test_an_unplugged_controller_shows_in_status_with_its_last_error(lane):
    lane["emulator"].command("unplug 4")

    def lane_status() -> dict:
        out = subprocess.run([sys.executable, "-m", "edge.cli", "status", "--json", "--config",
                              str(lane["config"])], capture_output=True, text=True, timeout=60)
        return json.loads(out.stdout)["lanes"][0]

    down = h.wait_until(lambda: lane_status()["gate_error"], 20, 0.3)
    assert down and "status poll failed" in down["error"], down
    assert h.wait_until(lambda: lane_status()["link_up"], 20, 0.3)  # back: the error stays, with its time
    text = subprocess.run([sys.executable, "-m", "edge.cli", "status", "--config", str(lane["config"])],
                          capture_output=True, text=True, timeout=60).stdout
    assert f"lane {LANE} gate last error: status poll failed" in text and " s ago)" in text, text


def test_doctor_reports_the_running_daemons_gates_and_cameras(lane):
    """While the daemon holds the ports and cameras, the doctor reports the daemon's own view of them."""
    out = subprocess.run([sys.executable, "-m", "edge.cli", "doctor", "--config", str(lane["config"])],
                         capture_output=True, text=True, timeout=120)
    rows = {line.split("  ")[0].strip(): line for line in out.stdout.splitlines()}
    assert " OK " in rows["gate controllers"] and "held by the running daemon" in rows["gate controllers"]
    assert " OK " in rows["cameras"] and "frames reaching the running daemon" in out.stdout, out.stdout
