"""`parkgate run` stops on SIGTERM while a lane's plate read hangs (review of 2026-12-03): it closes the
lanes and the store, names the hung thread and exits with EXIT_WORKER_HUNG within the grace. Before, Python
joined the wedged worker thread at exit: the daemon never exited (systemd's SIGKILL after TimeoutStopSec;
at a console Ctrl-C hung for ever).

A real daemon subprocess on the gate emulator's pty, a recorded camera and a real SQLite store; its plate
read (``PlateReader.read``) blocks for ever, as a wedged ONNX call does."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from edge.daemon.service import EXIT_WORKER_HUNG, HUNG_WORKER_GRACE_S
from edge.tools.demo import harness as h
from edge.tools.emulator.launch import running_emulator

# `parkgate run` whose plate read says it started (the file $READING) and never returns.
HUNG_READ_RUN = """
import os, sys, threading
from edge.vision.reader import PlateReader
def read(self, *args, **kwargs):
    open(os.environ["READING"], "w").close()
    threading.Event().wait()
PlateReader.read = read
from edge.cli import main
sys.exit(main())
"""


def test_sigterm_while_the_plate_read_hangs_exits_after_a_clean_stop(tmp_path: Path) -> None:
    state = tmp_path / "state"
    reading = tmp_path / "reading"
    camera = h.LaneCamera(tmp_path / "camera", "exit-1")
    with running_emulator(tmp_path, name="exit-1") as emulator:
        config = tmp_path / "parkgate.toml"
        config.write_text(h.toml_text(
            {"gateway": {"id": "gw", "lot_id": "LOT-H", "state_dir": str(state)}},
            [{"name": "exit-1", "direction": "exit",
              "gate": {"port": str(emulator.link), "baudrate": 115200, "pulse_ms": 3000},
              "camera": {"source": str(camera.manifest), "burst_frames": 3}}]))
        daemon = h.start_daemon(config, tmp_path / "daemon.log", env=os.environ | {"READING": str(reading)},
                                parkgate=(sys.executable, "-c", HUNG_READ_RUN))
        try:
            camera.show(h.Vehicle("car", "KX 904-LM", seed=622))
            emulator.command("presence 1")
            h.wait_until(reading.exists, 10)
            started = time.monotonic()
            os.killpg(daemon.pid, signal.SIGTERM)
            code = daemon.proc.wait(HUNG_WORKER_GRACE_S + 10)
            took = time.monotonic() - started
        finally:
            daemon.stop()
    assert code == EXIT_WORKER_HUNG, daemon.log_tail()
    assert took < HUNG_WORKER_GRACE_S + 5, took  # the shutdown, then the grace
    log = daemon.log_tail()
    assert "found = self.reader.read(frame.image, self.roi)" in log  # the hung thread's stack
    assert "exiting without waiting for 1 hung thread(s), status 3" in log
    assert '"state": "stopped"' in (state / "status.json").read_text()  # the final status was written
    assert not (state / "parkgate.sqlite-wal").exists()  # the store was closed (its WAL checkpointed)
