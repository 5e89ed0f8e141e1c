"""`parkgate run` on a damaged, read-only or full state directory (issue #17): the real daemon as a
subprocess, real SQLite files, and for the full disk the gate emulator on a pty, a recorded camera and
the bundled models.

Read-only and full state directories are real file systems: a small tmpfs mounted for the test (read-only
by remounting it). Mounting needs root with CAP_SYS_ADMIN; where that is missing those tests are skipped
and say so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from full_disk import fill, tmpfs

from edge.access.decide import commitment_function
from edge.store import Booking, RentalEvent, Store
from edge.tools.demo import harness as h
from edge.tools.emulator.launch import running_emulator
from edge.tools.net import free_tcp_port

LOT, LANE = "LOT-DISK-1", "entry-1"
KEY_HEX = "33" * 32
HASH = "0x" + "00" * 32
OWNER = "0x" + "11" * 20
BOOKED = h.Vehicle("booked", "AB 123-CD", seed=721)


def write_config(work: Path, state: Path, port: str = "/dev/null", camera: Path | None = None,
                 metrics_port: int | None = None) -> Path:
    (work / "plate-key").write_text(KEY_HEX + "\n")
    camera = camera or h.LaneCamera(work / "camera", LANE).manifest
    sections = {"gateway": {"id": "disk-gw", "lot_id": LOT, "state_dir": str(state)},
                "chain": {"plate_key_file": str(work / "plate-key")}}
    if metrics_port:
        sections["metrics"] = {"enabled": True, "port": metrics_port}
    config = work / "parkgate.toml"
    config.write_text(h.toml_text(sections, [{"name": LANE, "gate": {"port": port, "baudrate": 115200,
                                                                       "pulse_ms": 3000},
                                               "camera": {"source": str(camera), "burst_frames": 3}}]))
    return config


def run_daemon(config: Path) -> subprocess.CompletedProcess[str]:
    """`parkgate run` that is expected to stop at start."""
    return subprocess.run([sys.executable, "-m", "edge.cli", "run", "--config", str(config)],
                          capture_output=True, text=True, timeout=120)


def seed(store_path: Path) -> None:
    now_ms = int(time.time() * 1000)
    hour = 3_600_000
    commit = commitment_function(bytes.fromhex(KEY_HEX), LOT)
    with Store(store_path) as store:
        store.upsert_rental_event(RentalEvent("1", "1", LOT, OWNER, now_ms - 48 * hour, now_ms + 48 * hour, 1,
                                              "open", 1, HASH, 0))
        store.upsert_booking(Booking("1", "1", "1", LOT, OWNER, commit(BOOKED.plate), now_ms - hour,
                                     now_ms + hour, "requested", 1, HASH, 1))


def test_a_zero_length_store_stops_the_daemon_with_the_recovery_steps(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    seed(state / "parkgate.sqlite")
    (state / "parkgate.sqlite").write_bytes(b"")
    result = run_daemon(write_config(tmp_path, state))
    assert result.returncode == 2, result.stdout + result.stderr
    assert str(state / "parkgate.sqlite") in result.stdout and "empty (0 bytes)" in result.stdout
    assert "parkgate store recover" in result.stdout and "Traceback" not in result.stdout + result.stderr
    assert (state / "parkgate.sqlite").stat().st_size == 0, "no new empty store in its place"


def test_garbled_pages_stop_the_daemon(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    store = state / "parkgate.sqlite"
    seed(store)
    with Store(store) as s, s.transaction():
        for n in range(2000):
            s.enqueue_outbox("mqtt", f"evt-{n:08d}", {"n": n})
    size = store.stat().st_size
    with store.open("r+b") as handle:  # four pages in the middle of the file
        for page in range(size // 4096 // 2, size // 4096 // 2 + 4):
            handle.seek(page * 4096)
            handle.write(os.urandom(4096))
    result = run_daemon(write_config(tmp_path, state))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "is damaged" in result.stdout and str(store) in result.stdout, result.stdout
    assert "parkgate store recover" in result.stdout and "Traceback" not in result.stdout + result.stderr


def test_a_read_only_state_dir_stops_the_daemon_with_a_clear_error(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "state", "8m") as state:
        seed(state / "parkgate.sqlite")
        subprocess.run(["mount", "-o", "remount,ro", str(state)], check=True)
        result = run_daemon(write_config(tmp_path, state))
    assert result.returncode == 2, result.stdout + result.stderr
    # Whichever write comes first (the evidence directory, the store) names the file system and the path.
    assert "read-only file system" in result.stdout.lower() and str(state) in result.stdout, result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_a_full_state_dir_at_start_stops_the_daemon_with_a_clear_error(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "state", "4m") as state:
        seed(state / "parkgate.sqlite")
        (state / "evidence").mkdir()
        fill(state)
        result = run_daemon(write_config(tmp_path, state))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "full" in result.stdout and str(state / "parkgate.sqlite") in result.stdout, result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def _metric(port: int, name: str) -> float | None:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    found = [line for line in text.splitlines() if line.startswith(name + " ")]
    return float(found[0].split()[1]) if found else None


def test_a_full_state_dir_keeps_the_gate_shut_and_records_when_space_returns(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "state", "16m") as state:
        store = state / "parkgate.sqlite"
        seed(store)
        camera = h.LaneCamera(tmp_path / "camera", LANE)
        metrics_port = free_tcp_port()
        with running_emulator(tmp_path, name=LANE) as emulator:
            config = write_config(tmp_path, state, str(emulator.link), camera.manifest, metrics_port)
            daemon = h.start_daemon(config, tmp_path / "daemon.log")
            try:
                assert h.wait_until(lambda: _metric(metrics_port, "parkgate_store_writable") == 1.0, 10)
                filler = fill(state)
                opens = emulator.state()["open_commands"]
                full = h.play_visit(h.Visit(BOOKED, LANE, False, "booking_valid"), emulator, camera, store,
                                    record_timeout=3)
                assert emulator.state()["open_commands"] == opens, "no open without a durable record"
                assert not full.rows, "nothing could be recorded on a full disk"
                assert h.wait_until(lambda: _metric(metrics_port, "parkgate_store_writable") == 0.0, 10)
                assert _metric(metrics_port, "parkgate_store_pending_passes") == 1.0
                status = subprocess.run([sys.executable, "-m", "edge.cli", "status", "--config", str(config)],
                                        capture_output=True, text=True, timeout=30)
                assert "state dir" in status.stdout and "full" in status.stdout, status.stdout
                filler.unlink()  # space returns: the pass kept in memory is recorded
                rows = h.wait_until(lambda: h.read_rows(store), 10)
                assert [r["kind"] for r in rows] == ["fault"], rows
                assert rows[0]["booking_id"] == "1"
                assert h.wait_until(lambda: _metric(metrics_port, "parkgate_store_writable") == 1.0, 10)
                again = h.play_visit(h.Visit(BOOKED, LANE, True, "booking_valid"), emulator, camera, store)
                assert again.held, (again.opened, again.rows, again.error)
                snapshot = json.loads((state / "status.json").read_text())
                assert snapshot["store"]["writable"] and "store_unwritable" not in snapshot["active_alerts"]
            finally:
                daemon.stop()
