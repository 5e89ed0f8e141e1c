"""An operator's hold and its release, a moment apart, are audited in that order and dated when they came
(found 2026-12-03: two signed MQTT commands were audited release first when the hold's camera read was the
slower one, and each row was dated when its read ended).

A real SQLite store, the real Gatekeeper, LaneShell and ManualDesk; the gate is an in-memory driver and
the camera's first read is slow, as a busy CPU makes it."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from test_manual_full_disk import Gate, Lanes, gatekeeper

from edge.clock import TrustedClock
from edge.config import LaneConfig
from edge.daemon.gatekeeper import Gatekeeper
from edge.daemon.lane import LaneShell
from edge.daemon.manual import ManualDesk
from edge.lanes.machine import BurstDone, LaneSettings
from edge.store import Store


class SlowFirstCamera:
    """A lane camera whose first plate read takes ``first_s``, every later one none."""

    def __init__(self, first_s: float) -> None:
        self.first_s = first_s
        self.calls = 0
        self.lock = threading.Lock()

    def burst(self, burst_no: int, frames: int) -> BurstDone:
        with self.lock:
            self.calls += 1
            first = self.calls == 1
        if first:
            time.sleep(self.first_s)
        return BurstDone(burst_no, ())


def test_a_hold_and_its_release_are_audited_in_order_when_the_first_read_is_slower(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = Store(tmp_path / "parkgate.sqlite")
        keeper = gatekeeper(Gatekeeper, store)
        gate = Gate()
        camera = SlowFirstCamera(0.5)
        shell = LaneShell(LaneSettings(LaneConfig(name="exit-1", direction="exit")), gate,  # type: ignore[arg-type]
                          camera.burst, keeper, lambda *alert: None)
        desk = ManualDesk(None, keeper, TrustedClock(), Lanes(shell),  # type: ignore[arg-type]
                          {"exit-1": camera}, asyncio.Event(), asyncio.get_running_loop())
        started_ms = int(time.time() * 1000)
        why = "signed remote command"
        hold = asyncio.create_task(desk.manual(shell, "hold", "mqtt", "mqtt:n1", why))
        await asyncio.sleep(0.05)
        release = asyncio.create_task(desk.manual(shell, "release", "mqtt", "mqtt:n2", why))
        answers = await asyncio.wait_for(asyncio.gather(hold, release), 5)
        assert gate.calls == ["hold_open", "release"]
        assert [a["result"] for a in answers] == ["held open", "released"], answers
        audited = [row for _, row in sorted(store.manual_actions())]  # oldest first
        assert [(r.action, r.operator) for r in audited] == [("hold", "mqtt:n1"), ("release", "mqtt:n2")]
        assert started_ms <= audited[0].at_ms <= audited[1].at_ms < started_ms + 400, audited  # as they came
        assert not desk._last_audit  # nothing kept once every audit is written
        await shell.aclose()
        store.close()

    asyncio.run(scenario())
