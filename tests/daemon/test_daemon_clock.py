"""A real daemon whose wall clock steps (issue #17): the gate emulator on a pty, a recorded camera, the
bundled models, a real store and a real mosquitto broker (password + TLS) carrying signed commands.

The daemon's wall clock is shifted through ``PARKGATE_CLOCK_OFFSET_FILE`` (``edge.clock``: a test hook
read by everything parkgate times with the wall clock; its monotonic clock keeps running, as in a real
NTP step). libfaketime could not be used: with the monotonic clock left real, Python's ``time.sleep``
fails under it (EINVAL), and faking the monotonic clock too is not what an NTP step does.

One run, its steps recorded by the fixture, its outcomes asserted by the tests:
1. clock right: a captured signed open delivered 35 s late is refused as stale;
2. the clock steps back 40 s: the same captured open is refused again, the gate stays shut;
3. the clock steps back 3 days: `parkgate status` says "clock behind by 3 d" (not STALE), a booked car is
   admitted (windows judged against the floor: the newest time the store has seen), an operator's signed
   open (dated by the operator's right clock) is accepted once;
4. restart, booted 3 days behind: a second booked car is admitted, the captured open is still refused."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from edge.access.decide import commitment_function
from edge.clock import OFFSET_FILE_ENV
from edge.mqtt import generate_key, sign_command
from edge.mqtt.commands import parse_key
from edge.mqtt.topics import ONLINE, Topics
from edge.store import Booking, RentalEvent, Store
from edge.tools.demo import harness as h
from edge.tools.emulator.launch import running_emulator
from edge.tools.mosquitto import MosquittoBroker, TopicWatcher
from edge.tools.net import free_tcp_port

LOT, GATEWAY, LANE = "LOT-CLK-1", "clk-gw", "entry-1"
KEY_HEX = "22" * 32
HASH = "0x" + "00" * 32
OWNER = "0x" + "11" * 20
WATCHER = ("watcher", "watcher-secret-2")
BOOKED = h.Vehicle("booked", "AB 123-CD", seed=721)
BOOKED_AFTER_BOOT = h.Vehicle("booked2", "TR 552-GH", seed=223)
TOPICS = Topics("parkgate", GATEWAY)
THREE_DAYS_S = 3 * 86_400


class Watcher(TopicWatcher):
    """Subscribes to the gateway's topics (its own broker user); publishes commands."""

    def __init__(self, broker: MosquittoBroker) -> None:
        super().__init__(broker, WATCHER, f"{TOPICS.base}/#")

    def online(self) -> bool:
        announced = self.on(TOPICS.availability)
        return bool(announced) and announced[-1].get("raw") == ONLINE

    def command(self, payload: bytes) -> dict[str, Any]:
        """Publish a command and return the gateway's result for it."""
        before = len(self.on(TOPICS.command_result))
        self.client.publish(TOPICS.command(LANE), payload, qos=1).wait_for_publish(5)
        results = h.wait_until(lambda: self.on(TOPICS.command_result)[before:], 15, 0.1)
        assert results, "no command result"
        return results[0]


def seed_bookings(store_path: Path, now_ms: int) -> None:
    commit = commitment_function(bytes.fromhex(KEY_HEX), LOT)
    hour = 3_600_000
    with Store(store_path) as store:  # stamped with the true time: the daemon's floor
        store.upsert_rental_event(RentalEvent("1", "1", LOT, OWNER, now_ms - 48 * hour, now_ms + 48 * hour, 1,
                                              "open", 1, HASH, 0))
        for n, vehicle in enumerate((BOOKED, BOOKED_AFTER_BOOT), 1):
            store.upsert_booking(Booking(str(n), "1", "1", LOT, OWNER, commit(vehicle.plate), now_ms - hour,
                                         now_ms + hour, "requested", 1, HASH, n))


def status(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge.cli", "status", "--config", str(config)],
                          capture_output=True, text=True, timeout=30)


def behind_ms(state: Path) -> int:
    try:
        return int(json.loads((state / "status.json").read_text())["clock"]["behind_ms"])
    except (OSError, ValueError, KeyError):
        return -1


def set_offset(path: Path, seconds: int, state: Path, at_least_ms: int) -> bool:
    """Step the daemon's wall clock; True once its status reports it that far behind."""
    path.write_text(f"{seconds}\n")
    return bool(h.wait_until(lambda: behind_ms(state) >= at_least_ms, 10, 0.1))


@pytest.fixture(scope="module")
def clock_run(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("clock")
    state = work / "state"
    state.mkdir()
    (work / "plate-key").write_text(KEY_HEX + "\n")
    seed_bookings(state / "parkgate.sqlite", int(time.time() * 1000))
    offset = work / "clock-offset"
    offset.write_text("0\n")
    key_text = generate_key()
    (work / "command-key").write_text(key_text + "\n")
    key = parse_key(key_text)
    camera = h.LaneCamera(work / "camera", LANE)
    metrics_port = free_tcp_port()
    out: dict[str, Any] = {}
    broker = MosquittoBroker(work / "broker", extra_users=dict([WATCHER])).start()
    watcher = Watcher(broker)
    try:
        (work / "mqtt-password").write_text(broker.password + "\n")
        with running_emulator(work, name=LANE) as emulator:
            config = work / "parkgate.toml"
            config.write_text(h.toml_text(
                {"gateway": {"id": GATEWAY, "lot_id": LOT, "state_dir": str(state)},
                 "chain": {"plate_key_file": str(work / "plate-key")},
                 "metrics": {"enabled": True, "port": metrics_port},
                 "mqtt": {"enabled": True, "host": broker.host, "port": broker.port,
                          "username": broker.username, "password_file": str(work / "mqtt-password"),
                          "command_key_file": str(work / "command-key"),
                          "tls": {"ca_file": str(broker.ca_file)}}},
                [{"name": LANE, "gate": {"port": str(emulator.link), "baudrate": 115200, "pulse_ms": 3000},
                  "camera": {"source": str(camera.manifest), "burst_frames": 3}}]))
            env = os.environ | {OFFSET_FILE_ENV: str(offset)}
            store = state / "parkgate.sqlite"
            daemon = h.start_daemon(config, work / "daemon.log", env=env)
            try:
                assert h.wait_until(watcher.online, 30, 0.2), "daemon never came online"
                # 1. a captured open, delivered 35 s after it was signed
                captured = sign_command(key, GATEWAY, LANE, "open", int(time.time() * 1000) - 35_000)
                out["captured_late"] = watcher.command(captured)
                opens = emulator.state()["open_commands"]
                # 2. NTP steps the clock back 40 s: the captured open is "fresh" by the wall clock now
                out["stepped_40s"] = set_offset(offset, -40, state, 30_000)
                out["captured_after_step"] = watcher.command(captured)
                time.sleep(1.0)
                out["opens_after_replay"] = emulator.state()["open_commands"] - opens
                out["status_40s"] = status(config)
                # 3. the clock steps back three days
                out["stepped_3d"] = set_offset(offset, -THREE_DAYS_S, state, 2 * 86_400_000)
                out["status_3d"] = status(config)
                out["metrics_3d"] = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics",
                                                           timeout=5).read().decode()
                out["retained_status"] = watcher.on(TOPICS.status)[-1:]
                out["true_ms_at_visit"] = int(time.time() * 1000)
                out["visit_3d"] = h.play_visit(h.Visit(BOOKED, LANE, True, "booking_valid"), emulator, camera,
                                               store)
                opens = emulator.state()["open_commands"]
                operator = sign_command(key, GATEWAY, LANE, "open", int(time.time() * 1000))
                out["operator_open"] = watcher.command(operator)
                out["operator_opened"] = h.wait_until(
                    lambda: emulator.state()["open_commands"] > opens, 10)
                emulator.command("safety 1")
                time.sleep(0.3)
                emulator.command("safety 0")
                out["operator_replayed"] = watcher.command(operator)
                time.sleep(1.0)
                out["operator_opens"] = emulator.state()["open_commands"] - opens
                # 4. restart, booted three days behind
                os.killpg(daemon.pid, signal.SIGTERM)
                out["exit"] = daemon.proc.wait(15)
                daemon = h.start_daemon(config, work / "daemon-2.log", env=env)
                assert h.wait_until(lambda: behind_ms(state) > 2 * 86_400_000, 15, 0.1)
                out["status_boot"] = status(config)
                out["visit_boot"] = h.play_visit(h.Visit(BOOKED_AFTER_BOOT, LANE, True, "booking_valid"),
                                                 emulator, camera, store)
                opens = emulator.state()["open_commands"]
                out["captured_after_boot"] = watcher.command(captured)
                time.sleep(1.0)
                out["opens_after_boot_replay"] = emulator.state()["open_commands"] - opens
                out["alerts"] = watcher.on(TOPICS.alerts)
                yield out
            finally:
                daemon.stop()
    finally:
        watcher.close()
        broker.stop()


def test_a_captured_open_refused_as_stale_is_refused_after_the_clock_steps_back(clock_run):
    assert clock_run["captured_late"] == {"ok": False, "lane": LANE, "reason": "stale"}
    assert clock_run["stepped_40s"]
    assert clock_run["captured_after_step"]["ok"] is False, clock_run["captured_after_step"]
    assert clock_run["captured_after_step"]["reason"] in ("stale", "replayed")
    assert clock_run["opens_after_replay"] == 0
    assert clock_run["captured_after_boot"]["ok"] is False and clock_run["opens_after_boot_replay"] == 0


def test_status_says_clock_behind_and_not_stale(clock_run):
    three_days = r"clock behind by (3 d|2 d 23 h)"  # the floor is a few seconds old: "2 d 23 h" rounds down
    for key, behind in (("status_40s", r"clock behind by (39|40|41) s"), ("status_3d", three_days),
                        ("status_boot", three_days)):
        result = clock_run[key]
        assert result.returncode == 0, (key, result.stdout)
        assert "STALE" not in result.stdout and re.search(behind, result.stdout), (key, result.stdout)


def test_records_are_dated_with_the_best_time_not_the_stepped_clock(clock_run):
    row = clock_run["visit_3d"].main_row
    assert row is not None and abs(row["occurred_at_ms"] - clock_run["true_ms_at_visit"]) < 600_000, row


def test_clock_alert_in_metrics_and_mqtt(clock_run):
    assert any(a.get("code") == "clock_behind" for a in clock_run["alerts"]), clock_run["alerts"]
    assert "parkgate_clock_trusted 0" in clock_run["metrics_3d"]
    behind = [line for line in clock_run["metrics_3d"].splitlines()
              if line.startswith("parkgate_clock_behind_seconds ")]
    assert behind and float(behind[0].split()[1]) > 2 * 86_400, behind
    retained = clock_run["retained_status"]
    assert retained and "clock_behind" in retained[0].get("alerts", {}), retained


def test_a_booked_car_is_admitted_three_days_behind_before_and_after_a_restart(clock_run):
    for key in ("visit_3d", "visit_boot"):
        result = clock_run[key]
        assert result.held, (key, result.opened, result.rows, result.error)


def test_an_operator_open_is_accepted_once_while_the_clock_is_behind(clock_run):
    assert clock_run["operator_open"]["ok"] is True, clock_run["operator_open"]
    assert clock_run["operator_opened"] and clock_run["operator_opens"] == 1
    assert clock_run["operator_replayed"] == {"ok": False, "lane": LANE, "reason": "replayed"}
    assert clock_run["exit"] == 0
