"""The daemon's store retention, wired: a real `parkgate run` (gate emulator on a pty, recorded camera,
bundled models) started on a store holding old delivered, old undelivered and recent rows deletes only the
old delivered ones at start, and logs it. The rules themselves: tests/foundation/test_store_retention.py."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from edge.store import GateEventRow, Store
from edge.tools.demo import harness as h
from edge.tools.emulator.launch import running_emulator

DAY = 86_400_000
LANE = "entry-1"


def seed(store: Path, now: int) -> None:
    def row(name: str, at: int, kind: str = "denied") -> GateEventRow:
        return GateEventRow(event_id=f"event-{name}", lane=LANE, direction="entry", kind=kind, reason="seed",
                            plate_commitment="0x" + "ab" * 32, plate_masked="AB***3", occurred_at_ms=at)

    old = now - 400 * DAY
    with Store(store) as s:
        for name, at, kind in (("old-done", old, "denied"), ("old-pending", old, "denied"),
                               ("old-inside", old, "check_in"), ("recent", now - DAY, "denied")):
            s.record_gate_event(row(name, at, kind), ("mqtt",))
        delivered = [r.id for r in s.pending_outbox("mqtt") if r.event_id != "event-old-pending"]
        s.clock = lambda: old  # delivered long ago: a row changed after the cutoff keeps its event
        s.mark_outbox_done(delivered, "ack")


def test_the_daemon_prunes_the_store_at_start(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    store = state / "parkgate.sqlite"
    seed(store, int(time.time() * 1000))
    camera = h.LaneCamera(tmp_path / "camera", LANE)
    log = tmp_path / "daemon.log"
    with running_emulator(tmp_path, name=LANE) as emulator:
        config = tmp_path / "parkgate.toml"
        config.write_text(h.toml_text(
            {"gateway": {"id": "gw-retention", "lot_id": "LOT-RET", "state_dir": str(state)},
             "store": {"retention_days": 365}},
            [{"name": LANE, "gate": {"port": str(emulator.link), "baudrate": 115200},
              "camera": {"source": str(camera.manifest), "burst_frames": 3}}]))
        daemon = h.start_daemon(config, log)
        try:
            logged = h.wait_until(lambda: "store retention (365 days)" in log.read_text(errors="replace"), 30)
        finally:
            daemon.stop()
    assert logged, log.read_text(errors="replace")[-2000:]
    conn = sqlite3.connect(store)
    try:
        left = {event_id for (event_id,) in conn.execute("SELECT event_id FROM gate_events")}
    finally:
        conn.close()
    assert left == {"event-old-pending", "event-old-inside", "event-recent"}
    assert "deleted 1 gate_events, 1 outbox" in log.read_text(errors="replace")
