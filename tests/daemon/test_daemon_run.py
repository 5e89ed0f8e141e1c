"""`parkgate run` as a subprocess with one lane: the gate emulator on a real pty, a recorded camera
played in wall-clock time, the bundled ONNX models and a real SQLite store (no chain, no broker).

Bookings are put in the store as the chain sync would; the daemon reads plates from the frames."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from edge.access.decide import commitment_function
from edge.store import Booking, RentalEvent, Store
from edge.tools.demo import harness as h
from edge.tools.emulator.launch import running_emulator
from edge.tools.net import free_tcp_port

LOT = "LOT-T-1"
KEY_HEX = "11" * 32
HASH = "0x" + "00" * 32
OWNER = "0x" + "11" * 20
BOOKED = h.Vehicle("booked", "AB 123-CD", seed=721)
UNBOOKED = h.Vehicle("unbooked", "KX 904-LM", seed=622)
LATE = h.Vehicle("late", "TR 552-GH", seed=223)
DENIED = h.Vehicle("denied", "ZW 771-QP", seed=224)
NEAR = h.Vehicle("near", "AB 947-CD", seed=25)
VISITS = (
    h.Visit(BOOKED, "entry-1", True, "booking_valid"),
    h.Visit(UNBOOKED, "entry-1", False, "no_booking"),
    h.Visit(LATE, "entry-1", False, "expired"),
    h.Visit(DENIED, "entry-1", False, "deny_listed"),
    h.Visit(NEAR, "entry-1", False, "no_booking"),
)


def seed_bookings(store_path: Path, now_ms: int) -> None:
    commit = commitment_function(bytes.fromhex(KEY_HEX), LOT)
    hour = 3_600_000
    with Store(store_path) as store:
        store.upsert_rental_event(RentalEvent("1", "1", LOT, OWNER, now_ms - 48 * hour, now_ms + 48 * hour, 1,
                                              "open", 1, HASH, 0))
        windows = {BOOKED: (now_ms - hour, now_ms + hour), LATE: (now_ms - 30 * hour, now_ms - 20 * hour),
                   DENIED: (now_ms - hour, now_ms + hour)}
        for n, (vehicle, (start, end)) in enumerate(windows.items(), 1):
            store.upsert_booking(Booking(str(n), "1", "1", LOT, OWNER, commit(vehicle.plate), start, end,
                                         "requested", 1, HASH, n))


class NotifyListener:
    """The systemd side of sd_notify: a datagram socket collecting what the daemon says."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


@pytest.fixture(scope="module")
def lane_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("daemon")
    state = work / "state"
    state.mkdir()
    (work / "plate-key").write_text(KEY_HEX + "\n")
    seed_bookings(state / "parkgate.sqlite", int(time.time() * 1000))
    camera = h.LaneCamera(work / "camera", "entry-1")
    metrics_port = free_tcp_port()
    with running_emulator(work, name="entry-1") as emulator:
        config = work / "parkgate.toml"
        config.write_text(h.toml_text(
            {"gateway": {"id": "gw-test", "lot_id": LOT, "state_dir": str(state)},
             "policy": {"deny_list": [DENIED.plate]},
             "chain": {"plate_key_file": str(work / "plate-key")},
             "metrics": {"enabled": True, "port": metrics_port}},
            [{"name": "entry-1", "gate": {"port": str(emulator.link), "baudrate": 115200, "pulse_ms": 3000},
              "camera": {"source": str(camera.manifest), "burst_frames": 3}}]))
        listener = NotifyListener(work / "notify.sock")
        env = os.environ | {"NOTIFY_SOCKET": str(work / "notify.sock"), "WATCHDOG_USEC": "2000000"}
        daemon = h.start_daemon(config, work / "daemon.log", env=env)
        try:
            results = [h.play_visit(visit, emulator, camera, state / "parkgate.sqlite") for visit in VISITS]
            status_file = state / "status.json"
            h.wait_until(lambda: '"passes": 5' in status_file.read_text(), 5)  # refreshed every second
            status = subprocess.run([sys.executable, "-m", "edge.cli", "status", "--config", str(config)],
                                    capture_output=True, text=True, timeout=30)
            url = f"http://127.0.0.1:{metrics_port}/metrics"
            metrics = urllib.request.urlopen(url, timeout=5).read().decode()
            opens_before_stop = emulator.state()["opens"]
            os.killpg(daemon.pid, signal.SIGTERM)
            code = daemon.proc.wait(15)
            listener.close()
            yield {"notify": listener.messages, "results": results, "status": status, "metrics": metrics,
                   "exit": code, "work": work, "config": config, "emulator_opens": opens_before_stop}
        finally:
            daemon.stop()


@pytest.mark.parametrize("index", range(len(VISITS)), ids=[v.vehicle.name for v in VISITS])
def test_each_vehicle_gets_the_expected_decision(lane_run, index):
    result = lane_run["results"][index]
    assert result.held, (result.visit, result.opened, result.rows, result.error)


def test_the_admitted_car_is_recorded_with_evidence_and_no_plain_plate(lane_run):
    rows = lane_run["results"][0].rows
    assert [r["kind"] for r in rows] == ["verified", "check_in"]
    row = rows[-1]
    assert row["plate_masked"] == "AB***D" and row["plate_commitment"].startswith("0x")
    assert Path(row["evidence_path"]).is_file() and len(row["evidence_sha256"]) == 64
    assert "AB123CD" not in str(rows)


def test_gate_opened_only_for_the_booked_car(lane_run):
    assert lane_run["emulator_opens"] == 1


def test_status_metrics_and_clean_stop(lane_run):
    status = lane_run["status"]
    assert status.returncode == 0, status.stdout
    assert "lane entry-1" in status.stdout and "passes 5" in status.stdout
    assert 'parkgate_lane_opens_total{lane="entry-1"} 1' in lane_run["metrics"]
    assert lane_run["exit"] == 0
    after = subprocess.run([sys.executable, "-m", "edge.cli", "status", "--config", str(lane_run["config"])],
                           capture_output=True, text=True, timeout=30)
    assert after.returncode == 1 and "stopped" in after.stdout


def test_sd_notify_ready_watchdog_and_status(lane_run):
    said = lane_run["notify"]
    assert any(m.startswith("READY=1") for m in said), said[:5]
    assert sum(m == "WATCHDOG=1" for m in said) >= 3
    assert any(m.startswith("STATUS=running: entry-1") for m in said)
