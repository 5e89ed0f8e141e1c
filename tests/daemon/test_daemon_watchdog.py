"""systemd's watchdog sees a hung lane: while a lane's camera burst (a plate read, an ONNX call) has not
returned for ``HUNG_BURST_MS``, the status loop stops sending ``WATCHDOG=1`` and raises ``lane_hung``, so
systemd restarts the daemon instead of a lane refusing every car ``no_read`` behind a pinging main loop.

The daemon's status loop runs over a real store with a lane shell whose burst blocks, and its
sd_notify messages are read from a real datagram socket; the lane's clock is the test's."""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path

import pytest

from edge.access import Policy
from edge.clock import TrustedClock
from edge.config import config_from_mapping
from edge.daemon.alerts import Alerts
from edge.daemon.camera import LaneCamera
from edge.daemon.chainlink import ChainLink
from edge.daemon.gatekeeper import Gatekeeper
from edge.daemon.health import StatusLoop
from edge.daemon.lane import HUNG_BURST_MS, LaneShell
from edge.daemon.supervisor import LaneSupervisor
from edge.lanes.machine import BurstDone, LaneSettings, PresenceOn
from edge.store import Store
from edge.vision.camera import FrameSource


class Clock:
    now = 1_000

    def __call__(self) -> int:
        return self.now


def pings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hang_for_ms: int) -> tuple[int, dict[str, str]]:
    """WATCHDOG=1 messages the status loop sends in 0.5 s while the lane's burst has hung ``hang_for_ms``,
    and the alert conditions then."""
    cfg = config_from_mapping({"gateway": {"state_dir": str(tmp_path)}})
    sock_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(sock_path))
    listener.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(sock_path))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # a ping every 0.1 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    released = threading.Event()

    def burst(burst_no: int, frames: int) -> BurstDone:
        released.wait(5)  # the plate read that never returns (until the test ends)
        return BurstDone(burst_no, ())

    async def scenario() -> dict[str, str]:
        clock, stop = Clock(), asyncio.Event()
        store = Store(tmp_path / "parkgate.sqlite")
        alerts = Alerts(TrustedClock())
        keeper = Gatekeeper(store, Policy("LOT-W"), lambda plate: "0x" + "00" * 32, chain_on=False,
                            mqtt_on=False)
        lanes = LaneSupervisor(cfg.lanes, lambda lane, driver: None, alerts.alert, stop)  # type: ignore[arg-type,return-value]
        shell = LaneShell(LaneSettings(cfg.lanes[0]), None, burst, keeper, alerts.alert,  # type: ignore[arg-type]
                          clock_ms=clock)
        lanes.shells.append(shell)
        lanes.errors.clear()
        camera = LaneCamera("entry-1", FrameSource(str(tmp_path / "camera.mp4")), None, tmp_path)  # type: ignore[arg-type]
        status = StatusLoop(cfg, store, TrustedClock(), keeper, lanes, {"entry-1": camera}, alerts,
                            ChainLink(cfg))
        shell.feed(PresenceOn())  # a car: the burst starts, and hangs
        await asyncio.sleep(0.05)
        clock.now += hang_for_ms
        loop = asyncio.create_task(status.run(stop))
        await asyncio.sleep(0.5)
        stop.set()
        await loop
        released.set()
        await shell.aclose()
        store.close()
        return dict(alerts.conditions)

    try:
        conditions = asyncio.run(scenario())
        said = []
        while True:
            try:
                said.append(listener.recv(4096).decode())
            except BlockingIOError:
                break
    finally:
        released.set()
        listener.close()
    return sum(m == "WATCHDOG=1" for m in said), conditions


def test_a_burst_hung_past_the_bound_stops_the_watchdog_ping(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    sent, conditions = pings(tmp_path, monkeypatch, HUNG_BURST_MS)
    assert sent == 0
    assert "entry-1: camera burst running for 60 s" in conditions["lane_hung"]


def test_a_slow_burst_on_a_loaded_box_keeps_the_watchdog_fed(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    sent, conditions = pings(tmp_path, monkeypatch, HUNG_BURST_MS - 1)
    assert sent >= 3
    assert "lane_hung" not in conditions
