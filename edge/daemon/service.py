"""The gateway daemon (`parkgate run`): the imperative shell that wires every part together.

One asyncio loop on the main thread runs the lanes (driver events, lane machines, gate commands),
the decisions and the recording (local SQLite only: the network is never between a vehicle and the
gate), the status file, sd_notify and the signal handling. Background threads: one frame source per
lane, camera bursts (inference), the chain sync, the MQTT bridge (paho + its outbox pump) and the
metrics server; each opens its own ``Store`` on the same file. The lanes reach the store through
one object, the :class:`edge.daemon.gatekeeper.Gatekeeper` (decide, journal, record, recover); the
chain sync runs as its own object, :class:`edge.daemon.chainlink.ChainLink`.

Pass journal (log the grant before actuating): before a gate opens, the pass is written to the
store's ``pass_journal`` and committed; recording the pass deletes that row in the same transaction
as the gate event(s) and outbox rows. A daemon killed between the open and the record leaves the row;
the row is marked ``opened`` when the controller acknowledges the pulse. At the next start, before
any lane runs, each leftover becomes recorded rows in one transaction with the row's deletion:
- open acknowledged: a pass with its normal kind (``check_in``/``check_out``, ``verified`` first
  when due), reason ``passage_unconfirmed_restart,<decision reason>``. We assume passage: the
  barrier opened for a valid booking and the vehicle almost always drives through; dropping the row
  would lose billing and the on-chain check-in/out. The cost, a check-in for a car that turned
  back, is marked by the reason for review;
- no acknowledgement: the gate may never have opened (the kill came first, or the controller did
  not answer), and a check-in would lock the driver out by anti-passback when read again, so it is
  recorded as a ``fault`` with reason ``open_unconfirmed_restart,<decision reason>`` (the grant is
  on record; no check-in). A vehicle that did drive through in the ack's ~ms window is not billed.

Time and store health (issue #17): the daemon's clock is an :class:`edge.clock.TrustedClock` seeded with
the store's ``clock_floor``; decisions and command freshness use its best time. The store is opened only
if it is not a silently replaced file (``edge.store.integrity``) and passes ``PRAGMA quick_check``;
otherwise the daemon stops with an error naming the file and the recovery steps. Once a second the
status loop checks the clock against the floor (alert ``clock_behind``), writes the passes kept in memory
while the store refused writes (alert ``store_unwritable``) and, every :data:`FLOOR_SAVE_S`, saves the
best time as the floor. Active alerts go into the status file, the retained MQTT status and the metrics.

Shutdown on SIGTERM/SIGINT: stop taking passes, close each gate unless a vehicle is under it (an
open is a hardware-timed pulse anyway, so a killed daemon cannot leave a gate open), stop the
background parts (pending outbox rows stay for the next start), write a final status.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

from edge import notify
from edge.access import commitment_function, policy_from_config
from edge.chain.syncplan import chain_lot_code
from edge.clock import TrustedClock, describe_behind
from edge.config import CameraConfig, Config, LaneConfig, read_secret, relay_map_options
from edge.daemon.camera import camera_health, capture_burst, open_frame_source
from edge.daemon.chainlink import ChainLink
from edge.daemon.gatekeeper import Gatekeeper
from edge.daemon.lane import LaneShell
from edge.daemon.retention import PRUNE_EVERY_S, evidence_dir, make_private, prune_evidence
from edge.daemon.status import LaneStatus, StatusSnapshot, boot_id, status_path, write_status
from edge.errors import ParkgateError
from edge.identity import plate_key_bytes
from edge.lanes.machine import BurstDone, LaneSettings, ManualOpen
from edge.metrics import AnySample, HistogramSample, MetricsServer, Sample
from edge.store import Store, StoreDamagedError, wall_clock_ms
from edge.store.integrity import recovery_steps
from edge.throttle import Throttle
from edge.vision.camera import FrameSource
from edge.vision.reader import PlateReader
from edge.vision.roi import Roi
from firmware_bridge.driver import connect_driver
from firmware_bridge.errors import GateError
from firmware_bridge.gate import GateDriver

log = logging.getLogger(__name__)
STATUS_EVERY_S = 1.0
CONNECT_RETRY_S = 1.0
PLATE_KEY_FILE = "plate-key"
FLOOR_SAVE_S = 60.0  # how often the best time is saved as the clock floor (one small write)


def lot_code_of(cfg: Config) -> str:
    """The lot code keying plate commitments: the on-chain code of ``gateway.lot_id``."""
    return chain_lot_code(cfg.gateway.lot_id)


def plate_key(cfg: Config) -> bytes:
    """The lot secret for commitments: ``chain.plate_key_file``; without one (offline-only
    installations) a random key kept in the state dir (0600). Hex text is decoded, else raw UTF-8."""
    path = cfg.chain.plate_key_file
    if path is None:
        path = cfg.gateway.state_dir / PLATE_KEY_FILE
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32) + "\n")
    return plate_key_bytes(read_secret(path, "chain.plate_key_file"))


def open_store(cfg: Config, clock: TrustedClock) -> Store:
    """The daemon's store, refused (StoreDamagedError naming the file and the recovery steps) when it was
    silently replaced or fails ``PRAGMA quick_check``; its clock floor raises ``clock``'s."""
    store = Store(cfg.store_path, busy_timeout_ms=cfg.store.busy_timeout_ms, clock=clock.now_ms)
    problems = store.quick_check()
    if problems:
        store.close()
        raise StoreDamagedError(f"store {cfg.store_path} is damaged (PRAGMA quick_check: "
                                f"{'; '.join(problems[:3])}). {recovery_steps(cfg.store_path)}")
    clock.observe(store.clock_floor())
    return store


class Daemon:
    """Wiring: the store, the gatekeeper, one lane shell per lane (driver, camera), the chain sync,
    the MQTT bridge, metrics, the status file and sd_notify."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.started = time.time()
        self.started_mono = time.monotonic()
        self.state = "starting"
        self.stop_event = asyncio.Event()
        cfg.gateway.state_dir.mkdir(parents=True, exist_ok=True)
        self.evidence_dir = evidence_dir(cfg.gateway.state_dir)
        make_private(self.evidence_dir)
        self.clock = TrustedClock(tolerance_ms=cfg.clock.behind_tolerance_s * 1000)
        self.store = open_store(cfg, self.clock)
        self.chain = ChainLink(cfg)
        self.gatekeeper = Gatekeeper(self.store, policy_from_config(cfg),
                                     commitment_function(plate_key(cfg), lot_code_of(cfg)),
                                     chain_on=cfg.chain.enabled, mqtt_on=cfg.mqtt.enabled,
                                     on_recorded=self._wake_senders, clock=self.clock)
        self.recovered = self.gatekeeper.recover()
        self.reader = PlateReader(cfg.vision.detector_model, cfg.vision.ocr_model, cfg.vision.ocr_config,
                                  threads=cfg.vision.threads, region=cfg.vision.region)
        self.lanes: list[LaneShell] = []
        self.sources: list[FrameSource] = []
        self._published_lanes: dict[str, dict[str, Any]] = {}  # what MQTT last got, to publish changes only
        self._published_reads: dict[str, dict[str, Any]] = {}
        self._published_status: dict[str, Any] | None = None  # the retained status MQTT last got
        self._camera_counts: dict[str, tuple[float, int]] = {}  # lane -> (when, frames) at the last scrape
        self.drivers: list[GateDriver] = []
        self.alerts: dict[str, int] = {}
        self.bridge: Any = None
        self.metrics: MetricsServer | None = None
        self._last_snapshot: StatusSnapshot | None = None
        self.conditions: dict[str, str] = {}  # alerts raised now (code -> detail), cleared when resolved
        self._floor_saved_at = time.monotonic()
        self._status_write_failed = False
        self._camera_state: dict[str, str] = {}  # lane -> "ok" | "stalled", as last alerted
        self._alerts_out = Throttle(rate_per_s=0.1, burst=3)  # MQTT alert messages per code and lane

    def _wake_senders(self) -> None:
        """A pass was recorded: its outbox rows wait for the broker and the chain."""
        if self.bridge is not None:
            self.bridge.notify_outbox()
        self.chain.wake()

    def alert(self, lane: str, code: str, detail: str) -> None:
        """Count, log and publish on MQTT (``<prefix>/<gateway>/alerts``, at most 3 at once and one per
        10 s per code and lane; the counts in the status are complete)."""
        self.alerts[code] = self.alerts.get(code, 0) + 1
        log.warning("alert %s on lane %s: %s", code, lane, detail)
        key = f"{code}/{lane}"
        if self.bridge is not None and self._alerts_out.allow(key):
            try:
                self.bridge.publish_alert({"code": code, "lane": lane, "detail": detail,
                                           "at_ms": wall_clock_ms(),
                                           "suppressed": self._alerts_out.take_refused(key)})
            except Exception:  # noqa: BLE001 - the broker link must never stop a lane
                log.exception("MQTT alert publish failed")

    def _condition(self, code: str, detail: str | None) -> None:
        """An alert that holds while a condition lasts: raised (counted, logged) when it starts or its
        detail's first word changes, cleared when ``detail`` is None."""
        if detail is None:
            if self.conditions.pop(code, None) is not None:
                log.warning("alert %s cleared", code)
            return
        if code not in self.conditions:
            self.alert("-", code, detail)
        self.conditions[code] = detail

    def _health_tick(self) -> None:
        """Once a second: the clock against its floor, passes kept in memory, the floor saved."""
        with contextlib.suppress(sqlite3.Error):
            self.clock.observe(self.store.clock_floor())  # the chain sync raises it with block times
        now = self.clock.reading()
        self._condition("clock_behind", None if now.trusted else (
            f"wall clock behind by {describe_behind(now.behind_ms)} (behind the newest time this gateway "
            f"has seen); deciding with that time ({self.cfg.clock.untrusted_time!r} policy): fix NTP"))
        if self.gatekeeper.pending:
            with contextlib.suppress(Exception):
                self.gatekeeper.flush()
        self._condition("store_unwritable", self.gatekeeper.store_error)
        if time.monotonic() - self._floor_saved_at >= FLOOR_SAVE_S:
            self._floor_saved_at = time.monotonic()
            with contextlib.suppress(sqlite3.Error):
                self.store.raise_clock_floor(now.best_ms)

    # -- start-up --------------------------------------------------------------------------------------

    async def _connect(self, lane_cfg: LaneConfig) -> GateDriver:
        gate = lane_cfg.gate
        options: dict[str, object] = {}
        if gate.driver == "modbus-rtu":
            options = dict(relay_map_options(gate))
        while True:
            try:
                return await connect_driver(gate.driver, gate.port, gate.baudrate, **options)
            except Exception as exc:  # noqa: BLE001 - unplugged at start: keep trying, say so
                log.warning("lane %s: gate %s not reachable (%s); retrying", lane_cfg.name, gate.port, exc)
                self.alert(lane_cfg.name, "gate_unreachable", str(exc))
                # Not a failed start: systemd must not kill and restart us while an installer plugs it in.
                notify.extend_start_timeout(CONNECT_RETRY_S * 3,
                                            f"waiting for gate {gate.port} of lane {lane_cfg.name}")
                try:
                    await asyncio.wait_for(self.stop_event.wait(), CONNECT_RETRY_S)
                    raise asyncio.CancelledError
                except TimeoutError:
                    pass

    async def _start_lanes(self) -> None:
        self.sources = [open_frame_source(lane.camera.source, lane.camera.fps) for lane in self.cfg.lanes]
        # All gates at once: one slow or unplugged controller does not hold the others back.
        self.drivers = list(await asyncio.gather(*(self._connect(lane) for lane in self.cfg.lanes)))
        for lane_cfg, source, driver in zip(self.cfg.lanes, self.sources, self.drivers, strict=True):
            roi = _lane_roi(lane_cfg.camera, lane_cfg.name)
            burst = functools.partial(self._burst, source, lane_cfg.name, roi=roi)
            self.lanes.append(LaneShell(LaneSettings(lane_cfg), driver, burst, self.gatekeeper, self.alert))

    def _burst(self, source: FrameSource, lane: str, burst_no: int, frames: int,
               roi: Roi | None = None) -> BurstDone:
        return capture_burst(source, self.reader, burst_no, frames, timeout_s=2.5,
                             evidence_dir=self.evidence_dir, name=f"{lane}-{wall_clock_ms()}-{burst_no}",
                             roi=roi)

    def _start_mqtt(self) -> None:
        """The broker link is optional for the gate: a failure to start it is alerted, lanes go on."""
        if self.cfg.mqtt.enabled:
            from edge.mqtt.wiring import bridge_from_config

            try:
                self.bridge = bridge_from_config(self.cfg, self._remote_command, clock=self.clock).start()
            except Exception as exc:  # noqa: BLE001 - bad key/TLS files must not keep gates shut
                log.error("MQTT not started: %s", exc)
                self.alert("-", "mqtt_not_started", str(exc))
        self.gatekeeper.mqtt_on = self.bridge is not None

    def _remote_command(self, command: Any) -> Any:
        """A verified remote command (paho thread): hand it to the loop; only ``open`` exists."""
        from edge.mqtt import CommandOutcome
        from edge.mqtt.commands import LIST_ACTIONS

        if command.action in LIST_ACTIONS:  # the whole gateway: the store's lists, read before each decision
            from edge.daemon.lists import apply_list_command

            return CommandOutcome(*apply_list_command(self.cfg.store_path, command.action, command.args or {},
                                                      f"mqtt:{command.nonce}"))
        lane = next((shell for shell in self.lanes if shell.config.lane_id == command.lane), None)
        if lane is None or command.action != "open":
            return CommandOutcome(False, f"no lane {command.lane!r} or action {command.action!r} unsupported")
        self.loop.call_soon_threadsafe(lane.feed, ManualOpen(f"mqtt:{command.nonce}"))
        return CommandOutcome(True, "open queued")

    def _start_metrics(self) -> None:
        m = self.cfg.metrics
        if m.enabled:
            try:
                self.metrics = MetricsServer(m.host, m.port, self.samples).start()
            except OSError as exc:  # port taken: metrics are optional, the gates are not
                log.error("metrics not started on %s:%s: %s", m.host, m.port, exc)
                self.alert("-", "metrics_not_started", str(exc))

    # -- status ----------------------------------------------------------------------------------------

    def snapshot(self) -> StatusSnapshot:
        counts = self.store.counts()
        backlog = {k.split(".")[1]: v for k, v in counts.items()
                   if k.startswith("outbox.") and k.endswith((".pending", ".in_flight"))}
        lanes = tuple(LaneStatus(s.config.lane_id, str(s.runner.state.phase), s.link_up, s.stats.passes,
                                 s.stats.opens, s.stats.refused, s.stats.alerts, dict(s.stats.outcomes),
                                 s.stats.last_read, list(s.stats.open_latencies_ms), self._camera(s),
                                 s.stats.gate_error, s.stats.gate_position)
                      for s in self.lanes)
        now = time.time()
        reading = self.clock.reading()
        clock = {"wall_ms": reading.wall_ms, "best_ms": reading.best_ms, "behind_ms": reading.behind_ms,
                 "trusted": reading.trusted}
        store = {"writable": self.gatekeeper.store_error is None, "pending": len(self.gatekeeper.pending),
                 "dropped": self.gatekeeper.dropped}
        return StatusSnapshot(
            gateway=self.cfg.gateway.id, pid=os.getpid(), state=self.state, updated_at=now,
            uptime_s=round(time.monotonic() - self.started_mono, 1), lanes=lanes, backlog=backlog,
            gate_events=counts.get("gate_events", 0), bookings=counts.get("bookings", 0),
            inside=self.gatekeeper.presence.occupancy, alerts=dict(self.alerts),
            chain=dict(self.chain.health), mqtt=self._mqtt_health(),
            heartbeat_mono=time.monotonic(), boot_id=boot_id(), active_alerts=dict(self.conditions),
            clock=clock, store=store,
        )

    def _camera(self, lane: LaneShell) -> dict[str, Any]:
        source = self.sources[self.lanes.index(lane)]
        return camera_health(source, lane.config.lane.camera.stall_after_s, time.monotonic())

    def _check_cameras(self, lanes: tuple[LaneStatus, ...]) -> None:
        """Alert once when a lane's camera stalls (no decodable frame for ``stall_after_s``) and once
        when it recovers."""
        for lane in lanes:
            state = lane.camera.get("state", "ok")
            if state == self._camera_state.get(lane.name, "ok"):
                continue
            self._camera_state[lane.name] = state
            if state == "stalled":
                self.alert(lane.name, "camera_stalled", f"lane {lane.name}: no decodable frame for "
                           f"{lane.camera['silent_s']} s; passes are refused no_read until it recovers")
            else:
                self.alert(lane.name, "camera_recovered", f"lane {lane.name}: frames again")

    def _mqtt_health(self) -> dict[str, Any]:
        if self.bridge is None:
            return {"state": "off"}
        health = self.bridge.health()
        return {"state": "connected" if health["connected"] else "disconnected",
                "detail": health.get("last_connect_error") or "", "counters": health["counters"]}

    def samples(self) -> list[AnySample]:
        """The Prometheus samples (edge.metrics groups them into families): passes and refusals by reason,
        open latency, camera frames/fps/reconnects, gate link and errors, broker and chain links, backlog,
        alerts."""
        snap = self._last_snapshot
        state, events, inside = (snap.state, snap.gate_events, snap.inside) if snap else ("starting", 0, 0)
        chain = snap.chain if snap else {}
        out: list[AnySample] = [
            Sample("parkgate_up", 1.0 if state == "running" else 0.0, help="1 while serving"),
            Sample("parkgate_gate_events_total", events, "counter", "gate events recorded"),
            Sample("parkgate_inside", inside, help="vehicles inside")]
        out += [Sample("parkgate_outbox_backlog", n, help="rows not yet delivered",
                       labels={"destination": dest}) for dest, n in (snap.backlog if snap else {}).items()]
        out += [Sample("parkgate_alerts_total", n, "counter", "alerts raised, by code", {"code": code})
                for code, n in self.alerts.items()]
        out += self._health_samples(snap)
        out += [Sample("parkgate_lane_camera_up", 0.0 if lane.camera.get("state") == "stalled" else 1.0,
                       help="camera gives decodable frames", labels={"lane": lane.name})
                for lane in (snap.lanes if snap else ())]
        out += self._lane_samples() + self._camera_samples() + self._link_samples(chain)
        return out

    def _lane_samples(self) -> list[AnySample]:
        out: list[AnySample] = []
        for shell in self.lanes:
            labels, stats = {"lane": shell.config.lane_id}, shell.stats
            out += [Sample("parkgate_lane_passes_total", stats.passes, "counter", "passes", labels),
                    Sample("parkgate_lane_opens_total", stats.opens, "counter", "gate opens", labels),
                    Sample("parkgate_lane_gate_errors_total", stats.gate_errors, "counter",
                           "gate commands that failed", labels),
                    Sample("parkgate_lane_link_up", 1.0 if shell.link_up else 0.0, help="serial link",
                           labels=labels),
                    HistogramSample("parkgate_lane_open_latency_seconds", stats.open_latency,
                                    "from the car on the presence loop to the controller's open ack", labels)]
            out += [Sample("parkgate_lane_refusals_total", n, "counter",
                           "passes that did not open, by reason", {**labels, "reason": reason})
                    for reason, n in stats.refusals.items()]
        return out

    def _camera_samples(self) -> list[AnySample]:
        out: list[AnySample] = []
        now = time.monotonic()
        for lane, source in zip(self.cfg.lanes, self.sources, strict=False):
            labels, frames = {"lane": lane.name}, source.frames_read
            before = self._camera_counts.get(lane.name)
            fps = (frames - before[1]) / (now - before[0]) if before and now > before[0] else 0.0
            self._camera_counts[lane.name] = (now, frames)
            out += [Sample("parkgate_camera_frames_total", frames, "counter", "frames captured", labels),
                    Sample("parkgate_camera_fps", round(fps, 2), help="frames per second since the last "
                           "scrape", labels=labels),
                    Sample("parkgate_camera_reconnects_total", source.reconnects, "counter",
                           "camera (re)opens after a failure", labels),
                    Sample("parkgate_camera_frames_dropped_total", source.dropped, "counter",
                           "frames dropped unread (queue full)", labels)]
        return out

    def _link_samples(self, chain: dict[str, Any]) -> list[AnySample]:
        out: list[AnySample] = [
            Sample("parkgate_chain_rejected_records", chain.get("rejected", 0),
                   help="gate records the contract rejected (outbox state 'rejected')"),
            Sample("parkgate_chain_consecutive_failures", chain.get("consecutive_failures", 0),
                   help="chain sync rounds failed in a row (0: healthy)"),
            Sample("parkgate_chain_uploaded_total", chain.get("uploaded_total", 0), "counter",
                   "gate records uploaded"),
            Sample("parkgate_chain_reorgs_total", chain.get("reorgs_total", 0), "counter", "reorgs handled")]
        out += [Sample("parkgate_chain_alert", 1.0, help="a chain sync alert is raised",
                       labels={"code": code}) for code in chain.get("alerts", {})]
        if self.bridge is not None:
            health = self.bridge.health()
            counters = health["counters"]
            connected = 1.0 if health["connected"] else 0.0
            out += [Sample("parkgate_mqtt_connected", connected, help="broker link"),
                    Sample("parkgate_mqtt_connects_total", counters.get("connects", 0), "counter",
                           "broker (re)connects"),
                    Sample("parkgate_mqtt_connect_failures_total", counters.get("connect_failed", 0),
                           "counter", "broker connects refused"),
                    Sample("parkgate_mqtt_disconnects_total", counters.get("disconnects", 0), "counter",
                           "broker links lost")]
            out += [Sample("parkgate_mqtt_commands_rejected_total", n, "counter", "remote commands rejected",
                           labels={"reason": name.split(".", 1)[1]})
                    for name, n in sorted(counters.items()) if name.startswith("cmd_rejected.")]
        return out

    @staticmethod
    def _health_samples(snap: StatusSnapshot | None) -> list[Sample]:
        clock, store = (snap.clock, snap.store) if snap else ({}, {})
        return [
            Sample("parkgate_clock_behind_seconds", clock.get("behind_ms", 0) / 1000,
                   help="how far the wall clock is behind the newest time the gateway has seen"),
            Sample("parkgate_clock_trusted", 1.0 if clock.get("trusted", True) else 0.0,
                   help="0 while the wall clock is behind the sanity floor"),
            Sample("parkgate_store_writable", 1.0 if store.get("writable", True) else 0.0,
                   help="0 while the store refuses writes (disk full or read-only): gates stay shut"),
            Sample("parkgate_store_pending_passes", store.get("pending", 0),
                   help="passes kept in memory until the store takes writes again"),
        ]

    async def _status_loop(self) -> None:
        path = status_path(self.cfg.gateway.state_dir)
        interval = notify.watchdog_interval_s()
        while not self.stop_event.is_set():
            try:
                self._health_tick()
            except Exception:  # noqa: BLE001 - health checks must never stop the status loop
                log.exception("health tick failed")
            self._publish_status(path)
            if interval is not None:
                notify.watchdog()
            with contextlib.suppress(TimeoutError):
                period = min(STATUS_EVERY_S, interval or STATUS_EVERY_S)
                await asyncio.wait_for(self.stop_event.wait(), period)

    def _publish_status(self, path: Path) -> None:
        try:
            snap = self.snapshot()
            self._last_snapshot = snap
            self._check_cameras(snap.lanes)
        except Exception:  # noqa: BLE001 - status must never stop the gate
            log.exception("status snapshot failed")
            return
        try:
            write_status(path, snap)
            self._status_write_failed = False
        except OSError as exc:  # a full or read-only state dir: said once, MQTT and metrics still tell
            if not self._status_write_failed:
                log.error("status file %s not written: %s", path, exc)
            self._status_write_failed = True
        lanes = ", ".join(f"{lane.name} {lane.phase}" for lane in snap.lanes)
        notify.status(f"{snap.state}: {lanes}; backlog {snap.backlog or 0}")
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

    async def _retention_loop(self) -> None:
        """Evidence retention (edge.daemon.retention), now and every ``PRUNE_EVERY_S``, off the loop."""
        while not self.stop_event.is_set():
            try:
                await asyncio.to_thread(prune_evidence, self.evidence_dir, self.cfg.evidence, time.time())
            except Exception:  # noqa: BLE001 - retention must never stop the gate
                log.exception("evidence retention failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), PRUNE_EVERY_S)

    # -- run ---------------------------------------------------------------------------------------------

    async def run(self) -> int:
        self.loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(signum, self.stop_event.set)
        try:
            await self._start_lanes()
        except asyncio.CancelledError:
            await self._shutdown([])
            return 0
        self.chain.start()
        self._start_mqtt()
        self._start_metrics()
        tasks = [asyncio.create_task(lane.run(), name=f"lane-{lane.config.lane_id}") for lane in self.lanes]
        self.state = "running"
        status_task = asyncio.create_task(self._status_loop())
        retention_task = asyncio.create_task(self._retention_loop())
        notify.ready(f"serving {len(self.lanes)} lane(s)")
        log.info("READY: %d lane(s), store %s", len(self.lanes), self.cfg.store_path)
        print(f"READY pid={os.getpid()} lanes={len(self.lanes)}", flush=True)
        stop_wait = asyncio.create_task(self.stop_event.wait())
        done, _ = await asyncio.wait([stop_wait, *tasks], return_when=asyncio.FIRST_COMPLETED)
        lane_failed = False
        for task in done:
            if task is not stop_wait and task.exception() is not None:
                log.error("lane task ended: %r", task.exception())
                lane_failed = True
        self.stop_event.set()
        await status_task
        retention_task.cancel()
        with contextlib.suppress(BaseException):
            await retention_task
        await self._shutdown(tasks)
        # A lane that died is a failure: exit non-zero so systemd's Restart=on-failure brings it back.
        return 1 if lane_failed else 0

    async def _shutdown(self, tasks: list[asyncio.Task[Any]]) -> None:
        self.state = "stopping"
        notify.stopping()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        for lane in self.lanes:
            await lane.aclose()
        for driver in self.drivers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(driver.close(), 2.0)  # refused while a vehicle is under it: fine
            with contextlib.suppress(Exception):
                await asyncio.wait_for(driver.aclose(), 2.0)
        self.chain.stop()
        if self.bridge is not None:
            self.bridge.stop()
        if self.metrics is not None:
            self.metrics.stop()
        for source in self.sources:
            source.stop(2.0)
        self.state = "stopped"
        with contextlib.suppress(Exception):
            write_status(status_path(self.cfg.gateway.state_dir), self.snapshot())
        self.store.close()


def run_daemon(cfg: Config) -> int:
    """Run until SIGTERM/SIGINT; the exit code for the CLI."""
    try:
        daemon = Daemon(cfg)
    except (ParkgateError, GateError, OSError, ValueError) as exc:
        log.error("cannot start: %s", exc)
        print(f"parkgate run: cannot start: {exc}", flush=True)
        return 2
    return asyncio.run(daemon.run())


def _lane_roi(camera: CameraConfig, lane: str) -> Roi | None:
    """The lane camera's region of interest (validated by config), None for the whole frame."""
    return Roi.parse([list(p) for p in camera.roi], f"{lane}.camera.roi") if camera.roi else None
