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

Lanes are independent: each connects, serves, fails and reconnects on its own (an unplugged
controller only keeps its own lane waiting); the daemon reports READY once the store is up and at
least one lane serves, and its status names the lanes that do not (``degraded``). Lanes wired to one
Modbus port share one client (:class:`firmware_bridge.modbus.ModbusBus`).

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
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from edge import notify
from edge.access import commitment_function, policy_from_config
from edge.chain.syncplan import chain_lot_code
from edge.clock import TrustedClock, describe_behind
from edge.config import CameraConfig, Config, LaneConfig, read_secret, relay_map_options
from edge.daemon import control
from edge.daemon.camera import camera_health, capture_burst, open_frame_source
from edge.daemon.chainlink import ChainLink
from edge.daemon.gatekeeper import Gatekeeper
from edge.daemon.lane import WATCH_QUEUE, LaneShell
from edge.daemon.liveview import BUSY_PHASES, Detect, LiveLane, LiveView, live_loop
from edge.daemon.retention import PRUNE_EVERY_S, evidence_dir, make_private, prune_evidence
from edge.daemon.status import LaneStatus, StatusSnapshot, boot_id, status_path, write_status
from edge.errors import ParkgateError
from edge.identity import mask_plate_or_none, plate_key_bytes
from edge.lanes.machine import BurstDone, LaneSettings, ManualOpen
from edge.metrics import AnySample, HistogramSample, MetricsServer, Sample
from edge.store import ManualActionRow, Store, StoreDamagedError, wall_clock_ms
from edge.store.integrity import recovery_steps
from edge.throttle import Throttle
from edge.vision.camera import FrameSource
from edge.vision.reader import PlateDetector, PlateReader
from edge.vision.roi import Roi
from firmware_bridge.driver import connect_driver
from firmware_bridge.errors import GateError
from firmware_bridge.gate import GateDriver
from firmware_bridge.modbus import ModbusBus

log = logging.getLogger(__name__)
STATUS_EVERY_S = 1.0
CONNECT_RETRY_S = 1.0
LANE_RESTART_S = 2.0  # a lane whose loop failed starts again after this, on its own
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
        self._alerts_out = Throttle(rate_per_s=0.1, burst=3)  # MQTT alert messages per code and lane
        self._alert_logs = Throttle(rate_per_s=0.1, burst=10)  # alert log lines per code and lane
        self.clock = TrustedClock(tolerance_ms=cfg.clock.behind_tolerance_s * 1000)
        self.store = open_store(cfg, self.clock)  # first: its errors name the file and the recovery
        self.evidence_dir = evidence_dir(cfg.gateway.state_dir)
        make_private(self.evidence_dir)
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
        self.drivers: dict[str, GateDriver] = {}  # lane name -> its connected driver
        self.lane_errors: dict[str, str] = {lane.name: "starting" for lane in cfg.lanes}  # not serving: why
        self.serving = asyncio.Event()  # set when the first lane serves
        self._tried: set[str] = set()  # lanes whose first connection attempt has ended
        self.all_tried = asyncio.Event()
        self.modbus_bus = ModbusBus()
        self.control: control.ControlServer | None = None
        self._published_status: dict[str, Any] | None = None  # the retained status MQTT last got
        self._camera_counts: dict[str, tuple[float, int]] = {}  # lane -> (when, frames) at the last scrape
        self.alerts: dict[str, int] = {}
        self.bridge: Any = None
        self.metrics: MetricsServer | None = None
        self._last_snapshot: StatusSnapshot | None = None
        self.conditions: dict[str, str] = {}  # alerts raised now (code -> detail), cleared when resolved
        self._floor_saved_at = time.monotonic()
        self._status_write_failed = False
        self._camera_state: dict[str, str] = {}  # lane -> "ok" | "stalled", as last alerted

    def _wake_senders(self) -> None:
        """A pass was recorded: its outbox rows wait for the broker and the chain."""
        if self.bridge is not None:
            self.bridge.notify_outbox()
        self.chain.wake()

    def alert(self, lane: str, code: str, detail: str) -> None:
        """Count, log and publish on MQTT (``<prefix>/<gateway>/alerts``, at most 3 at once and one per
        10 s per code and lane; the counts in the status are complete)."""
        self.alerts[code] = self.alerts.get(code, 0) + 1
        key = f"{code}/{lane}"
        if self._alert_logs.allow(key):  # a flood (forged serial frames) must not flood the log
            more = self._alert_logs.take_refused(key)
            log.warning("alert %s on lane %s: %s%s", code, lane, detail,
                        f" ({more} more since the last line)" if more else "")
        if self.bridge is not None and self._alerts_out.allow(key):
            try:
                self.bridge.publish_alert({"code": code, "lane": lane, "detail": detail,
                                           "at_ms": self.clock.now_ms(),
                                           "suppressed": self._alerts_out.take_refused(key)})
            except Exception:  # noqa: BLE001 - the broker link must never stop a lane
                log.exception("MQTT alert publish failed")

    def _condition(self, code: str, detail: str | None) -> None:
        """An alert that holds while a condition lasts: raised (counted, logged, published) when it starts,
        its detail kept current for the status, cleared when ``detail`` is None."""
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

    async def _connect(self, lane_cfg: LaneConfig) -> GateDriver | None:
        """The lane's gate driver, retrying until it connects; None when the daemon stops first."""
        gate = lane_cfg.gate
        options: dict[str, object] = {}
        if gate.driver == "modbus-rtu":
            options = dict(relay_map_options(gate))
        while not self.stop_event.is_set():
            try:
                return await connect_driver(gate.driver, gate.port, gate.baudrate, bus=self.modbus_bus,
                                            **options)
            except Exception as exc:  # noqa: BLE001 - unplugged: keep trying, say so; other lanes go on
                self._tried_once(lane_cfg.name)
                why = f"gate not reachable: {exc}"
                if self.lane_errors.get(lane_cfg.name) != why:  # once per new reason, not per retry
                    log.warning("lane %s: %s; retrying", lane_cfg.name, why)
                    self.alert(lane_cfg.name, "gate_unreachable", str(exc))
                self.lane_errors[lane_cfg.name] = why
                if not self.serving.is_set():
                    # Not a failed start: systemd must not kill and restart us while an installer plugs it in.
                    notify.extend_start_timeout(CONNECT_RETRY_S * 3,
                                                f"waiting for gate {gate.port} of lane {lane_cfg.name}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop_event.wait(), CONNECT_RETRY_S)
        return None

    def _tried_once(self, lane: str) -> None:
        self._tried.add(lane)
        if len(self._tried) == len(self.cfg.lanes):
            self.all_tried.set()

    def _start_lanes(self) -> list[asyncio.Task[None]]:
        """One task per lane: each connects, serves, fails and reconnects on its own."""
        self.sources = [open_frame_source(lane.camera.source, lane.camera.fps) for lane in self.cfg.lanes]
        return [asyncio.create_task(self._serve_lane(lane, source), name=f"lane-{lane.name}")
                for lane, source in zip(self.cfg.lanes, self.sources, strict=True)]

    async def _serve_lane(self, lane_cfg: LaneConfig, source: FrameSource) -> None:
        """Until the daemon stops: connect the lane's gate, run the lane; if its loop fails, close the
        driver and start again (the other lanes never wait for this one)."""
        name = lane_cfg.name
        shell: LaneShell | None = None
        while (driver := await self._connect(lane_cfg)) is not None:
            self._tried_once(name)
            self.drivers[name] = driver
            if shell is None:
                roi = _lane_roi(lane_cfg.camera, name)
                burst = functools.partial(self._burst, source, name, roi=roi)
                shell = LaneShell(LaneSettings(lane_cfg), driver, burst, self.gatekeeper, self.alert,
                                  wall_ms=self.clock.now_ms)  # records dated with the best time
                self.lanes.append(shell)
            shell.driver, shell.held = driver, False  # a new connection holds nothing
            self.lane_errors.pop(name, None)
            self.serving.set()
            log.info("lane %s: serving (gate %s on %s)", name, lane_cfg.gate.driver, lane_cfg.gate.port)
            try:
                await shell.run()
            except Exception as exc:  # noqa: BLE001 - this lane only: report, restart it, the others go on
                log.exception("lane %s: stopped by an error; restarting in %.0f s", name, LANE_RESTART_S)
                self.lane_errors[name] = f"lane failed: {exc!r}"
                self.alert(name, "lane_failed", repr(exc))
            await shell.aclose()
            await _close_driver(self.drivers.pop(name))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), LANE_RESTART_S)

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
        """A verified remote command (paho thread): hand it to the loop, audited like a local one."""
        from edge.mqtt import CommandOutcome
        from edge.mqtt.commands import LIST_ACTIONS

        if command.action in LIST_ACTIONS:  # the whole gateway: the store's lists, read before each decision
            from edge.daemon.lists import apply_list_command

            return CommandOutcome(*apply_list_command(self.cfg.store_path, command.action, command.args or {},
                                                      f"mqtt:{command.nonce}"))
        lane = next((shell for shell in self.lanes if shell.config.lane_id == command.lane), None)
        if lane is None or command.action not in control.GATE_ACTIONS:
            return CommandOutcome(False, f"no lane {command.lane!r} or action {command.action!r} unsupported")
        asyncio.run_coroutine_threadsafe(
            self._manual(lane, command.action, "mqtt", f"mqtt:{command.nonce}", "signed remote command"),
            self.loop)
        return CommandOutcome(True, f"{command.action} queued")

    # -- manual operation (control socket, signed MQTT commands) ----------------------------------------

    async def _start_control(self) -> None:
        """The local control socket; without it the gates still run (it is an operator's tool)."""
        path = control.socket_path(self.cfg.gateway.state_dir)
        names = [lane.name for lane in self.cfg.lanes]
        try:
            self.control = await control.ControlServer(path, names, self._operate, self._watch).start()
        except OSError as exc:
            log.error("control socket not started at %s: %s", path, exc)
            self.alert("-", "control_not_started", str(exc))

    async def _operate(self, request: control.Request, peer: control.Peer) -> dict[str, Any]:
        shell = next((s for s in self.lanes if s.config.lane_id == request.lane), None)
        if shell is None or request.lane in self.lane_errors:
            why = self.lane_errors.get(str(request.lane), "not connected yet")
            return {"ok": False, "error": f"lane {request.lane} is not serving: {why}"}
        if request.action == "status":
            try:
                status = await shell.driver.status()
            except Exception as exc:  # noqa: BLE001 - the controller did not answer: say so
                return {"ok": False, "error": f"lane {request.lane}: status failed: {exc}"}
            return {"ok": True, "lane": request.lane, "held": shell.held, "status": {
                "position": status.position.name, "presence": status.presence, "safety": status.safety,
                "held": status.held, "faults": int(status.faults), "opens": status.opens}}
        return await self._manual(shell, request.action, "socket", request.who(peer), request.reason)

    async def _manual(self, shell: LaneShell, action: str, source: str, who: str, reason: str
                      ) -> dict[str, Any]:
        """Open, hold or release one lane's gate for an operator, then audit it: who, why, the result,
        the camera's read and evidence (``manual_actions``; an open is also a ``manual`` pass)."""
        lane = shell.config.lane_id
        log.warning("manual %s on lane %s by %s: %s", action, lane, who, reason)
        try:
            ok, result = await self._act(shell, action, who)
        except Exception as exc:  # noqa: BLE001 - refused or unreachable: audited, reported
            ok, result = False, f"failed: {exc}"
        audit_id, read = await self._audit(shell, action, source, who, reason, result)
        return {"ok": ok, "lane": lane, "action": action, "result": result, "audit_id": audit_id,
                "read": read}

    async def _act(self, shell: LaneShell, action: str, who: str) -> tuple[bool, str]:
        if action == "hold":
            await shell.hold()
            return True, "held open"
        if action == "release":
            await shell.release()
            return True, "released"
        opens = shell.stats.opens
        shell.feed(ManualOpen(who))
        deadline = time.monotonic() + shell.config.ack_timeout_ms / 1000
        while shell.stats.opens == opens and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if shell.stats.opens > opens:
            return True, "opened"
        return False, f"not opened (lane {shell.runner.state.phase})"

    async def _audit(self, shell: LaneShell, action: str, source: str, who: str, reason: str,
                     result: str) -> tuple[int | None, dict[str, Any] | None]:
        """Record the operation with what the lane's camera reads now; never raises."""
        lane_cfg = shell.config.lane
        plate = confidence = snapshot = None
        try:
            source_ = self.sources[self.cfg.lanes.index(lane_cfg)]
            burst = await asyncio.to_thread(self._burst, source_, lane_cfg.name, 0,
                                            min(3, lane_cfg.camera.burst_frames),
                                            _lane_roi(lane_cfg.camera, lane_cfg.name))
            best = max((r for r in burst.reads if r.text), key=lambda r: r.confidence, default=None)
            if best is not None:
                plate = mask_plate_or_none(best.text)
                confidence = round(min(1.0, max(0.0, best.confidence)), 3)
            snapshot = burst.snapshot
        except Exception as exc:  # noqa: BLE001 - no camera read: the operation is audited all the same
            log.warning("lane %s: no camera read for the manual %s: %s", lane_cfg.name, action, exc)
        row = ManualActionRow(self.clock.now_ms(), lane_cfg.name, action, source, who, reason, result, plate,
                              confidence, snapshot.path if snapshot else None,
                              snapshot.sha256 if snapshot else None)
        try:
            audit_id = self.store.record_manual_action(row)
        except Exception:  # noqa: BLE001 - the gate already acted; say loudly that the audit is missing
            log.exception("lane %s: manual %s by %s NOT audited", lane_cfg.name, action, who)
            return None, None
        return audit_id, {"plate_masked": plate, "confidence": confidence,
                          "evidence": snapshot.path if snapshot else None}

    async def _watch(self, lane: str | None) -> AsyncGenerator[dict[str, Any], None]:
        """Input changes of one lane (or all) as they come, after a status line per lane."""
        shells = [s for s in self.lanes if lane is None or s.config.lane_id == lane]
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(WATCH_QUEUE)
        for shell in shells:
            shell.watchers.add(queue)
        try:
            for shell in shells:
                with contextlib.suppress(Exception):
                    status = await shell.driver.status()
                    yield {"at_ms": wall_clock_ms(), "lane": shell.config.lane_id, "kind": "status",
                           "position": status.position.name, "presence": int(status.presence),
                           "safety": int(status.safety), "held": int(status.held or shell.held),
                           "faults": int(status.faults)}
            while not self.stop_event.is_set():
                with contextlib.suppress(TimeoutError):
                    yield await asyncio.wait_for(queue.get(), 1.0)
        finally:
            for shell in shells:
                shell.watchers.discard(queue)

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
        serving = [s for s in self.lanes if s.config.lane_id not in self.lane_errors]
        lanes = tuple(LaneStatus(s.config.lane_id, str(s.runner.state.phase), s.link_up, s.stats.passes,
                                 s.stats.opens, s.stats.refused, s.stats.alerts, dict(s.stats.outcomes),
                                 s.stats.last_read, list(s.stats.open_latencies_ms), self._camera(s),
                                 gate_error=s.stats.gate_error, gate_position=s.stats.gate_position,
                                 held=s.held, presence=s.runner.state.presence, safety=s.runner.state.safety)
                      for s in serving)
        lanes += tuple(LaneStatus(name, "down", False, serving=False, error=why)
                       for name, why in self.lane_errors.items())
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
            chain=dict(self.chain.health), mqtt=self._mqtt_health(), degraded=dict(self.lane_errors),
            heartbeat_mono=time.monotonic(), boot_id=boot_id(), active_alerts=dict(self.conditions),
            clock=clock, store=store,
        )

    def _camera(self, lane: LaneShell) -> dict[str, Any]:
        source = self.sources[self.cfg.lanes.index(lane.config.lane)]
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
        out: list[AnySample] = [Sample("parkgate_lane_serving", 0.0 if lane.name in self.lane_errors else 1.0,
                                       help="1 while the lane's gate driver is connected and its loop runs "
                                       "(0: `parkgate status` says why)", labels={"lane": lane.name})
                                for lane in self.cfg.lanes]
        for shell in self.lanes:
            labels, stats = {"lane": shell.config.lane_id}, shell.stats
            out += [Sample("parkgate_lane_held", 1.0 if shell.held else 0.0,
                           help="1 while an operator holds the gate open", labels=labels),
                    Sample("parkgate_lane_passes_total", stats.passes, "counter", "passes", labels),
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
        tasks = self._start_lanes()
        await self._start_control()
        status_task = asyncio.create_task(self._status_loop())
        retention_task = asyncio.create_task(self._retention_loop())
        live = LiveView(self.cfg.gateway.state_dir, [
            LiveLane(lane.name, source, _lane_roi(lane.camera, lane.name))
            for lane, source in zip(self.cfg.lanes, self.sources, strict=True)], self._live_detector,
            self._lane_busy)
        live_task = asyncio.create_task(live_loop(live, self.stop_event))
        # READY once the store is up (it is: __init__ opened and recovered it) and one lane serves.
        serving = asyncio.create_task(self.serving.wait())
        stop_wait = asyncio.create_task(self.stop_event.wait())
        await asyncio.wait([serving, stop_wait], return_when=asyncio.FIRST_COMPLETED)
        serving.cancel()
        with contextlib.suppress(TimeoutError):  # a lane still on its first try is not called degraded yet
            await asyncio.wait_for(self.all_tried.wait(), CONNECT_RETRY_S)
        if not self.stop_event.is_set():
            self.chain.start()
            self._start_mqtt()
            self._start_metrics()
            self.state = "running"
            self._publish_status(status_path(self.cfg.gateway.state_dir))  # READY never meets "starting"
            self._ready()
        await stop_wait
        await status_task
        retention_task.cancel()
        with contextlib.suppress(BaseException):
            await retention_task
        with contextlib.suppress(BaseException):
            await live_task
        await self._shutdown(tasks)
        return 0

    def _live_detector(self) -> Detect:
        """The live view's own detector session with one onnxruntime thread: its work runs on the live
        view's low-priority thread, never on the lanes' reader."""
        return PlateDetector(self.cfg.vision.detector_model, threads=1).detect

    def _lane_busy(self, name: str) -> bool:
        """Whether the lane reads a vehicle now (the live view then skips its detector)."""
        shell = next((s for s in self.lanes if s.config.lane_id == name), None)
        return shell is not None and str(shell.runner.state.phase) in BUSY_PHASES

    def _ready(self) -> None:
        down = sorted(self.lane_errors)
        serving = len(self.cfg.lanes) - len(down)
        degraded = f"; DEGRADED: {', '.join(down)} not serving" if down else ""
        notify.ready(f"serving {serving} lane(s){degraded}")
        log.info("READY: %d lane(s), store %s%s", serving, self.cfg.store_path, degraded)
        print(f"READY pid={os.getpid()} lanes={serving}" + (f" degraded={','.join(down)}" if down else ""),
              flush=True)

    async def _shutdown(self, tasks: list[asyncio.Task[Any]]) -> None:
        self.state = "stopping"
        notify.stopping()
        if self.control is not None:
            await self.control.stop()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        for lane in self.lanes:
            await lane.aclose()
        for driver in list(self.drivers.values()):
            await _close_driver(driver)
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


async def _close_driver(driver: GateDriver) -> None:
    """Close the gate (refused while a vehicle is under it: fine, the pulse ends by itself), let go."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(driver.close(), 2.0)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(driver.aclose(), 2.0)


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
