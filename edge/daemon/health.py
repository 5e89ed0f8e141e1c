"""The daemon's health and status loop: once a second it checks the clock against its floor, writes the
passes kept in memory while the store refused writes, saves the best time as the floor every
:data:`FLOOR_SAVE_S`, takes the status snapshot (``edge.daemon.status``), alerts when a lane's camera
stalls or recovers, writes ``status.json``, tells systemd (status line, watchdog) and publishes the
retained MQTT status and lane states when they changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Mapping
from typing import Any

from edge import notify
from edge.clock import TrustedClock, describe_behind
from edge.config import Config
from edge.daemon.alerts import Alerts
from edge.daemon.camera import LaneCamera
from edge.daemon.chainlink import ChainLink
from edge.daemon.gatekeeper import Gatekeeper
from edge.daemon.lane import LaneShell
from edge.daemon.status import LaneStatus, StatusSnapshot, boot_id, status_path, write_status
from edge.daemon.supervisor import LaneSupervisor
from edge.store import Store

log = logging.getLogger(__name__)
STATUS_EVERY_S = 1.0
FLOOR_SAVE_S = 60.0  # how often the best time is saved as the clock floor (one small write)


class StatusLoop:
    """``state`` is the daemon's (starting, running, stopping, stopped); ``bridge`` the MQTT bridge once
    it started; ``last`` the latest snapshot (the metrics read it)."""

    def __init__(self, cfg: Config, store: Store, clock: TrustedClock, gatekeeper: Gatekeeper,
                 lanes: LaneSupervisor, cameras: Mapping[str, LaneCamera], alerts: Alerts,
                 chain: ChainLink) -> None:
        self.cfg = cfg
        self.store = store
        self.clock = clock
        self.gatekeeper = gatekeeper
        self.lanes = lanes
        self.cameras = cameras
        self.alerts = alerts
        self.chain = chain
        self.state = "starting"
        self.bridge: Any = None
        self.last: StatusSnapshot | None = None
        self.path = status_path(cfg.gateway.state_dir)
        self.started_mono = time.monotonic()
        self._published_status: dict[str, Any] | None = None  # the retained status MQTT last got
        self._published_lanes: dict[str, dict[str, Any]] = {}  # what MQTT last got, to publish changes only
        self._published_reads: dict[str, dict[str, Any]] = {}
        self._camera_state: dict[str, str] = {}  # lane -> "ok" | "stalled", as last alerted
        self._floor_saved_at = time.monotonic()
        self._write_failed = False

    async def run(self, stop: asyncio.Event) -> None:
        interval = notify.watchdog_interval_s()
        while not stop.is_set():
            try:
                self.health_tick()
            except Exception:  # noqa: BLE001 - health checks must never stop the status loop
                log.exception("health tick failed")
            self.publish()
            if self.lanes_alive() and interval is not None:
                notify.watchdog()
            with contextlib.suppress(TimeoutError):
                period = min(STATUS_EVERY_S, interval or STATUS_EVERY_S)
                await asyncio.wait_for(stop.wait(), period)

    def lanes_alive(self) -> bool:
        """False while a lane's camera burst hangs (alert ``lane_hung``): the watchdog ping stops then, so
        systemd restarts the daemon (a hung plate read never ends by itself, and every pass of that lane
        would be refused)."""
        hung = [why for shell in self.lanes.shells if (why := shell.hung()) is not None]
        self.alerts.condition("lane_hung", "; ".join(hung) + ": watchdog ping stopped, systemd restarts the "
                              "daemon" if hung else None)
        return not hung

    def health_tick(self) -> None:
        """The clock against its floor, passes kept in memory, the floor saved."""
        with contextlib.suppress(sqlite3.Error):
            self.clock.observe(self.store.clock_floor())  # the chain sync raises it with block times
        now = self.clock.reading()
        self.alerts.condition("clock_behind", None if now.trusted else (
            f"wall clock behind by {describe_behind(now.behind_ms)} (behind the newest time this gateway "
            f"has seen); deciding with that time ({self.cfg.clock.untrusted_time!r} policy): fix NTP"))
        if self.gatekeeper.waiting():
            with contextlib.suppress(Exception):
                self.gatekeeper.flush()
        self.alerts.condition("store_unwritable", self.gatekeeper.store_error)
        if time.monotonic() - self._floor_saved_at >= FLOOR_SAVE_S:
            self._floor_saved_at = time.monotonic()
            with contextlib.suppress(sqlite3.Error):
                self.store.raise_clock_floor(now.best_ms)

    def publish(self) -> None:
        """Snapshot, camera alerts, ``status.json``, systemd's status line, the retained MQTT status."""
        try:
            snap = self.snapshot()
            self.last = snap
            self._check_cameras(snap.lanes)
        except Exception:  # noqa: BLE001 - status must never stop the gate
            log.exception("status snapshot failed")
            return
        try:
            write_status(self.path, snap)
            self._write_failed = False
        except OSError as exc:  # a full or read-only state dir: said once, MQTT and metrics still tell
            if not self._write_failed:
                log.error("status file %s not written: %s", self.path, exc)
            self._write_failed = True
        lanes = ", ".join(f"{lane.name} {lane.phase}"
                          + (" camera STALLED" if lane.camera.get("state") == "stalled" else "")
                          for lane in snap.lanes)
        down = f"; DEGRADED: {', '.join(snap.degraded)} not serving" if snap.degraded else ""
        notify.status(f"{snap.state}: {lanes}; backlog {snap.backlog or 0}{down}")
        if self.bridge is not None:
            try:
                # retained: only when it changed (uptime alone is no change), not every tick
                status = {"state": snap.state, "inside": snap.inside, "capacity": self.cfg.policy.capacity,
                          "backlog": snap.backlog, "chain": snap.chain.get("state", "off"),
                          "alerts": snap.active_alerts}
                if status != self._published_status:
                    self.bridge.publish_status({**status, "uptime_s": snap.uptime_s})
                    self._published_status = status
                self._publish_lane_changes(snap.lanes)
            except Exception:  # noqa: BLE001 - the broker link must never stop the status loop
                log.exception("MQTT status publish failed")

    def write_final(self) -> None:
        with contextlib.suppress(Exception):
            write_status(self.path, self.snapshot())

    def _publish_lane_changes(self, lanes: tuple[LaneStatus, ...]) -> None:
        """Retained lane state and the latest plate read, each only when it changed since the last tick."""
        assert self.bridge is not None
        for lane in lanes:
            name = lane.name
            last = lane.last_read or {}
            state = {"state": lane.phase, "link_up": lane.link_up, "gate": lane.gate_position,
                     "camera": lane.camera.get("state", "ok"),
                     "last_decision": last.get("decision"), "last_allow": last.get("allow")}
            if self._published_lanes.get(name) != state:
                self.bridge.publish_lane_state(name, state)
                self._published_lanes[name] = state
            read = lane.last_read
            # Reads are best effort (not in the outbox): dropped offline; the latest goes on reconnect.
            if read is not None and self._published_reads.get(name) != read \
                    and self.bridge.publish_read({"lane": name, **read}):
                self._published_reads[name] = read

    def snapshot(self) -> StatusSnapshot:
        counts = self.store.counts()
        backlog = {k.split(".")[1]: v for k, v in counts.items()
                   if k.startswith("outbox.") and k.endswith((".pending", ".in_flight"))}
        errors = self.lanes.errors
        lanes = tuple(self._lane_status(s) for s in self.lanes.shells if s.config.lane_id not in errors)
        lanes += tuple(LaneStatus(name, "down", False, serving=False, error=why)
                       for name, why in errors.items())
        reading = self.clock.reading()
        clock = {"wall_ms": reading.wall_ms, "best_ms": reading.best_ms, "behind_ms": reading.behind_ms,
                 "trusted": reading.trusted}
        store = {"writable": self.gatekeeper.store_error is None, "pending": len(self.gatekeeper.pending),
                 "pending_audits": len(self.gatekeeper.audits),
                 "dropped": self.gatekeeper.dropped}
        return StatusSnapshot(
            gateway=self.cfg.gateway.id, pid=os.getpid(), state=self.state, updated_at=time.time(),
            uptime_s=round(time.monotonic() - self.started_mono, 1), lanes=lanes, backlog=backlog,
            gate_events=counts.get("gate_events_recorded", 0), bookings=counts.get("bookings", 0),
            inside=self.gatekeeper.presence.occupancy, alerts=dict(self.alerts.counts),
            chain=dict(self.chain.health), mqtt=self.mqtt_health(), degraded=dict(errors),
            heartbeat_mono=time.monotonic(), boot_id=boot_id(), active_alerts=dict(self.alerts.conditions),
            clock=clock, store=store,
        )

    def _lane_status(self, s: LaneShell) -> LaneStatus:
        camera = self.cameras[s.config.lane.name].health(s.config.lane.camera.stall_after_s, time.monotonic())
        return LaneStatus(s.config.lane_id, str(s.state.phase), s.link_up, s.stats.passes,
                          s.stats.opens, s.stats.refused, s.stats.alerts, dict(s.stats.outcomes),
                          s.stats.last_read, list(s.stats.open_latencies_ms), camera,
                          gate_error=s.stats.gate_error, gate_position=s.stats.gate_position, held=s.held,
                          read_from=dict(s.stats.read_from), presence=s.state.presence,
                          safety=s.state.safety)

    def _check_cameras(self, lanes: tuple[LaneStatus, ...]) -> None:
        """Alert once when a lane's camera stalls (no decodable frame for ``stall_after_s``) and once
        when it recovers."""
        for lane in lanes:
            state = lane.camera.get("state", "ok")
            if state == self._camera_state.get(lane.name, "ok"):
                continue
            self._camera_state[lane.name] = state
            if state == "stalled":
                self.alerts.alert(lane.name, "camera_stalled",
                                  f"lane {lane.name}: no decodable frame for {lane.camera['silent_s']} s; "
                                  "passes are refused no_read until it recovers")
            else:
                self.alerts.alert(lane.name, "camera_recovered", f"lane {lane.name}: frames again")

    def mqtt_health(self) -> dict[str, Any]:
        if self.bridge is None:
            return {"state": "off"}
        health = self.bridge.health()
        return {"state": "connected" if health["connected"] else "disconnected",
                "detail": health.get("last_connect_error") or "", "counters": health["counters"]}
