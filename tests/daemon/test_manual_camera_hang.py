"""An operator's open while the lane's plate read hangs (review of 2026-12-03): the gate opens and the
open is audited, without a read, within the lane's burst timeout; the operator's answer comes. Before,
the audit waited for the hung read: `parkgate gate open` timed out (the operator, told nothing, opens
again) and the audit row was never written while the read hung (lost at the watchdog's restart).

A real SQLite store, the real Gatekeeper, LaneShell and ManualDesk; the gate is an in-memory driver and
the camera's burst blocks as a wedged ONNX call does."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from test_manual_full_disk import Gate, Lanes, gatekeeper

from edge.clock import TrustedClock
from edge.config import LaneConfig
from edge.daemon.gatekeeper import Gatekeeper
from edge.daemon.lane import LaneShell
from edge.daemon.manual import ManualDesk
from edge.lanes.machine import BurstDone, LaneSettings
from edge.store import Store

OPERATOR = "alice (uid 1000, pid 4242)"
BURST_TIMEOUT_MS = 300


@dataclass
class HungCamera:
    """A lane camera whose plate read never returns (until the test ends)."""

    released: threading.Event

    def burst(self, burst_no: int, frames: int) -> BurstDone:
        self.released.wait(10)
        return BurstDone(burst_no, ())


def test_an_operator_open_is_answered_and_audited_while_the_plate_read_hangs(tmp_path: Path) -> None:
    released = threading.Event()

    async def scenario() -> None:
        store = Store(tmp_path / "parkgate.sqlite")
        keeper = gatekeeper(Gatekeeper, store)
        gate = Gate()
        settings = LaneSettings(LaneConfig(name="exit-1", direction="exit"),
                                burst_timeout_ms=BURST_TIMEOUT_MS)
        shell = LaneShell(settings, gate, HungCamera(released).burst, keeper,  # type: ignore[arg-type]
                          lambda *alert: None)
        desk = ManualDesk(None, keeper, TrustedClock(), Lanes(shell),  # type: ignore[arg-type]
                          {"exit-1": HungCamera(released)}, asyncio.Event(), asyncio.get_running_loop())
        started = time.monotonic()
        answer = await asyncio.wait_for(desk.manual(shell, "open", "socket", OPERATOR, "camera dead"), 5)
        took = time.monotonic() - started
        assert gate.calls[0] == "open_pulse"
        assert answer["ok"] and answer["result"] == "opened" and answer["audit_id"] is not None, answer
        assert answer["read"] == {"plate_masked": None, "confidence": None, "evidence": None}
        assert took < 2, took
        audited = [row for _, row in store.manual_actions()]
        assert [(r.action, r.operator, r.result, r.plate_masked) for r in audited] == [
            ("open", OPERATOR, "opened", None)]
        released.set()  # before asyncio.run's end, which waits for its worker threads
        await shell.aclose()
        store.close()

    try:
        asyncio.run(scenario())
    finally:
        released.set()
