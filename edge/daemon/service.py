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
status loop (:class:`edge.daemon.health.StatusLoop`) checks the clock against the floor (alert
``clock_behind``), writes the passes kept in memory while the store refused writes (alert
``store_unwritable``) and saves the best time as the floor every minute. Active alerts
(:class:`edge.daemon.alerts.Alerts`) go into the status file, the retained MQTT status and the metrics.

Lanes are independent (:class:`edge.daemon.supervisor.LaneSupervisor`): each connects, serves, fails and
reconnects on its own (an unplugged controller only keeps its own lane waiting); the daemon reports
READY once the store is up and at least one lane serves, and its status names the lanes that do not
(``degraded``). Operators' opens, holds and releases go through :class:`edge.daemon.manual.ManualDesk`.

This module is the wiring: it builds those parts, starts them in order and stops them.

Shutdown on SIGTERM/SIGINT: stop taking passes, close each gate unless a vehicle is under it (an
open is a hardware-timed pulse anyway, so a killed daemon cannot leave a gate open), stop the
background parts (pending outbox rows stay for the next start), write a final status, close the store.
A worker thread still busy 2 s later (a plate read wedged in ONNX or a camera driver) no longer keeps the
process alive: it is named in the log and the daemon exits with status 3 (``_exit_past_hung_workers``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import signal
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from edge import notify
from edge.access import commitment_function, policy_from_config
from edge.chain.commitment import chain_lot_code
from edge.clock import TrustedClock
from edge.config import Config, LaneConfig, read_secret
from edge.daemon import control
from edge.daemon.alerts import Alerts
from edge.daemon.approach import ApproachReader
from edge.daemon.camera import LaneCamera, open_frame_source
from edge.daemon.chainlink import ChainLink
from edge.daemon.gatekeeper import Gatekeeper
from edge.daemon.health import StatusLoop
from edge.daemon.lane import LaneShell
from edge.daemon.liveview import BUSY_PHASES, Detect, LiveLane, LiveView, live_loop
from edge.daemon.manual import ManualDesk
from edge.daemon.retention import evidence_dir, make_private, prune_loop, store_prune_loop
from edge.daemon.samples import Samples
from edge.daemon.supervisor import CONNECT_RETRY_S, LaneSupervisor
from edge.daemon.tuning import tune_process
from edge.errors import ParkgateError
from edge.identity import plate_key_bytes
from edge.lanes.machine import LaneSettings, Phase
from edge.metrics import MetricsServer
from edge.store import Store, StoreDamagedError
from edge.store.integrity import recovery_steps
from edge.vision.camera import FrameSource
from edge.vision.reader import PlateDetector, PlateReader
from edge.vision.roi import Roi
from edge.vision.tracks import TrackSettings
from edge.vision.types import ModelError
from firmware_bridge.errors import GateError
from firmware_bridge.gate import GateDriver

log = logging.getLogger(__name__)
PLATE_KEY_FILE = "plate-key"
EXIT_WORKER_HUNG = 3  # stopped cleanly, but a worker thread (a plate read, a camera) never returned
HUNG_WORKER_GRACE_S = 2.0  # after the shutdown, how long a worker thread may take to return


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
    silently replaced or fails ``PRAGMA quick_check``, and (StoreError naming the file, its owner and the
    fix) when this user cannot write it; its clock floor raises ``clock``'s."""
    store = Store(cfg.store_path, busy_timeout_ms=cfg.store.busy_timeout_ms, clock=clock.now_ms)
    try:
        problems = store.quick_check()
        if problems:
            raise StoreDamagedError(f"store {cfg.store_path} is damaged (PRAGMA quick_check: "
                                    f"{'; '.join(problems[:3])}). {recovery_steps(cfg.store_path)}")
        store.check_writable()  # SQLite opens a file it may not write read-only, silently
    except BaseException:
        store.close()
        raise
    clock.observe(store.clock_floor())
    return store


class Daemon:
    """Wiring: the store, the gatekeeper, the lane supervisor (one lane shell per lane: driver, camera),
    the status loop, manual operation, the chain sync, the MQTT bridge, metrics and sd_notify."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.stop_event = asyncio.Event()
        cfg.gateway.state_dir.mkdir(parents=True, exist_ok=True)
        self.clock = TrustedClock(tolerance_ms=cfg.clock.behind_tolerance_s * 1000)
        self.store = open_store(cfg, self.clock)  # first: its errors name the file and the recovery
        self.evidence_dir = evidence_dir(cfg.gateway.state_dir)
        make_private(self.evidence_dir)
        self.alerts = Alerts(self.clock)
        self.chain = ChainLink(cfg)
        self.bridge: Any = None
        self.gatekeeper = Gatekeeper(self.store, policy_from_config(cfg),
                                     commitment_function(plate_key(cfg), lot_code_of(cfg)),
                                     chain_on=cfg.chain.enabled, mqtt_on=cfg.mqtt.enabled,
                                     on_recorded=self._wake_senders, clock=self.clock)
        self.recovered = self.gatekeeper.recover()
        tune_process()
        self.reader = PlateReader(cfg.vision.detector_model, cfg.vision.ocr_model, cfg.vision.ocr_config,
                                  threads=cfg.vision.threads, region=cfg.vision.region)
        self.cameras: dict[str, LaneCamera] = {}  # lane name -> its camera, opened when the daemon runs
        self.lanes = LaneSupervisor(cfg.lanes, self._lane_shell, self.alerts.alert, self.stop_event)
        self.status = StatusLoop(cfg, self.store, self.clock, self.gatekeeper, self.lanes, self.cameras,
                                 self.alerts, self.chain)
        self.control: control.ControlServer | None = None
        self.metrics: MetricsServer | None = None

    def _lane_shell(self, lane: LaneConfig, driver: GateDriver) -> LaneShell:
        return LaneShell(LaneSettings(lane), driver, self.cameras[lane.name].burst, self.gatekeeper,
                         self.alerts.alert, wall_ms=self.clock.now_ms)  # records dated with the best time

    def _open_cameras(self) -> None:
        for lane in self.cfg.lanes:
            source = open_frame_source(lane.camera.source, lane.camera.fps)
            roi = lane.camera.region
            self.cameras[lane.name] = LaneCamera(lane.name, source, self.reader, self.evidence_dir, roi,
                                                 approach=self._approach(lane, source, roi),
                                                 wall_ms=self.clock.now_ms)

    def _approach(self, lane: LaneConfig, source: FrameSource, roi: Roi | None) -> ApproachReader | None:
        """The lane's approach reading, started (None when ``camera.approach`` is off)."""
        if not lane.camera.approach:
            return None
        settings = TrackSettings(window_s=lane.camera.track_window_s,
                                 min_confidence=self.cfg.vision.min_confidence,
                                 min_votes=LaneSettings(lane).min_votes)
        idle = functools.partial(self._lane_idle, lane.name)
        return ApproachReader(source, self.reader, roi, settings, idle, lane.name).start()

    def _lane_idle(self, lane: str) -> bool:
        """Whether ``lane`` waits for a car (no pass running): only then is its approach read."""
        shell = self.lanes.shell(lane)
        return shell is not None and shell.state.phase is Phase.IDLE

    def _wake_senders(self) -> None:
        """A pass was recorded: its outbox rows wait for the broker and the chain."""
        if self.bridge is not None:
            self.bridge.notify_outbox()
        self.chain.wake()

    # -- run ---------------------------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop_event.set)
        self._open_cameras()
        self.lanes.start()
        desk = ManualDesk(self.cfg, self.gatekeeper, self.clock, self.lanes, self.cameras, self.stop_event,
                          loop)
        await self._start_control(desk)
        status_task = asyncio.create_task(self.status.run(self.stop_event))
        retention_task = asyncio.create_task(prune_loop(self.evidence_dir, self.cfg.evidence,
                                                        self.stop_event, lambda: self.clock.now_ms() / 1000))
        store_retention_task = asyncio.create_task(store_prune_loop(self.cfg.store_path, self.cfg.store,
                                                                    self.stop_event, self.clock.now_ms))
        live = LiveView(self.cfg.gateway.state_dir, [
            LiveLane(name, camera.source, camera.roi) for name, camera in self.cameras.items()],
            self._live_detector, self._lane_busy)
        live_task = asyncio.create_task(live_loop(live, self.stop_event))
        # READY once the store is up (it is: __init__ opened and recovered it) and one lane serves.
        serving = asyncio.create_task(self.lanes.serving.wait())
        stop_wait = asyncio.create_task(self.stop_event.wait())
        await asyncio.wait([serving, stop_wait], return_when=asyncio.FIRST_COMPLETED)
        serving.cancel()
        with contextlib.suppress(TimeoutError):  # a lane still on its first try is not called degraded yet
            await asyncio.wait_for(self.lanes.all_tried.wait(), CONNECT_RETRY_S)
        if not self.stop_event.is_set():
            self.chain.start()
            self._start_mqtt(desk)
            self._start_metrics()
            self.status.state = "running"
            self.status.publish()  # READY never meets "starting"
            self._ready()
        await stop_wait
        await status_task
        # a frame or a prune still running is left to its thread (the store's prune stops after its batch)
        for task in (retention_task, store_retention_task, live_task):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await self._shutdown()
        return 0

    def _live_detector(self) -> Detect:
        """The live view's own detector session with one onnxruntime thread: its work runs on the live
        view's low-priority thread, never on the lanes' reader."""
        return PlateDetector(self.cfg.vision.detector_model, threads=1).detect

    def _lane_busy(self, name: str) -> bool:
        """Whether the lane reads a vehicle now (the live view then skips its detector)."""
        shell = self.lanes.shell(name)
        return shell is not None and str(shell.state.phase) in BUSY_PHASES

    async def _start_control(self, desk: ManualDesk) -> None:
        """The local control socket; without it the gates still run (it is an operator's tool)."""
        path = control.socket_path(self.cfg.gateway.state_dir)
        names = [lane.name for lane in self.cfg.lanes]
        try:
            self.control = await control.ControlServer(path, names, desk.operate, desk.watch).start()
        except OSError as exc:
            log.error("control socket not started at %s: %s", path, exc)
            self.alerts.alert("-", "control_not_started", str(exc))

    def _start_mqtt(self, desk: ManualDesk) -> None:
        """The broker link is optional for the gate: a failure to start it is alerted, lanes go on."""
        if self.cfg.mqtt.enabled:
            from edge.mqtt.wiring import bridge_from_config

            try:
                self.bridge = bridge_from_config(self.cfg, desk.remote_command, clock=self.clock).start()
            except Exception as exc:  # noqa: BLE001 - bad key/TLS files must not keep gates shut
                log.error("MQTT not started: %s", exc)
                self.alerts.alert("-", "mqtt_not_started", str(exc))
        # The passes stay queued for 'mqtt' (gatekeeper.mqtt_on) even when the bridge did not start: they go
        # out once it starts after the fix, and the status shows them as backlog meanwhile.
        self.alerts.bridge = self.status.bridge = self.bridge

    def _start_metrics(self) -> None:
        m = self.cfg.metrics
        if m.enabled:
            try:
                self.metrics = MetricsServer(m.host, m.port, Samples(self.status, self.cameras)).start()
            except OSError as exc:  # port taken: metrics are optional, the gates are not
                log.error("metrics not started on %s:%s: %s", m.host, m.port, exc)
                self.alerts.alert("-", "metrics_not_started", str(exc))

    def _ready(self) -> None:
        down = sorted(self.lanes.errors)
        serving = len(self.cfg.lanes) - len(down)
        degraded = f"; DEGRADED: {', '.join(down)} not serving" if down else ""
        notify.ready(f"serving {serving} lane(s){degraded}")
        log.info("READY: %d lane(s), store %s%s", serving, self.cfg.store_path, degraded)
        print(f"READY pid={os.getpid()} lanes={serving}" + (f" degraded={','.join(down)}" if down else ""),
              flush=True)

    async def _shutdown(self) -> None:
        self.status.state = "stopping"
        notify.stopping()
        if self.control is not None:
            await self.control.stop()
        await self.lanes.stop()
        self.chain.stop()
        if self.bridge is not None:
            self.bridge.stop()
        if self.metrics is not None:
            self.metrics.stop()
        for camera in self.cameras.values():
            if camera.approach is not None:
                camera.approach.stop(2.0)
            camera.source.stop(2.0)
        self.status.state = "stopped"
        self.status.write_final()
        self.store.close()


def run_daemon(cfg: Config) -> int:
    """Run until SIGTERM/SIGINT; the exit code for the CLI."""
    try:
        daemon = Daemon(cfg)
    except ModelError as exc:
        return _cannot_start(_model_problem(cfg, exc))
    except (ParkgateError, GateError, OSError, ValueError) as exc:
        return _cannot_start(str(exc))
    workers = ThreadPoolExecutor(thread_name_prefix="asyncio")  # asyncio's default executor, made ours
    with asyncio.Runner() as runner:
        runner.get_loop().set_default_executor(workers)
        code = runner.run(daemon.run())
        _exit_past_hung_workers(workers, code)
    return code


def _exit_past_hung_workers(workers: ThreadPoolExecutor, code: int) -> None:
    """End the process now if a worker thread is still busy ``HUNG_WORKER_GRACE_S`` after the shutdown.

    Python joins every worker thread before it exits (asyncio's default executor when the loop closes,
    then the interpreter), and nothing can cancel a thread: a plate read wedged in ONNX or a camera driver
    (``asyncio.to_thread``) kept a stopped daemon, gates and store already closed, alive until systemd's
    SIGKILL (``TimeoutStopSec``), and a console's Ctrl-C for ever. Everything that matters is done by now
    (gates, store and pass journal closed, final status written), so the stuck threads are named in the
    log and the process ends with ``EXIT_WORKER_HUNG`` (``os._exit``: no joins). Without a stuck thread
    this returns at once and the exit is Python's usual one."""
    workers.shutdown(wait=False)  # idle workers end; a busy one ends when its call returns
    deadline = time.monotonic() + HUNG_WORKER_GRACE_S
    for thread in _joined_at_exit():
        thread.join(max(0.0, deadline - time.monotonic()))
    hung = _joined_at_exit()
    if not hung:
        return
    frames = sys._current_frames()
    for thread in hung:
        stack = "".join(traceback.format_stack(frames[thread.ident])) if thread.ident in frames else ""
        log.error("thread %s still running %.0f s after the shutdown (a hung plate read or camera?):\n%s",
                  thread.name, HUNG_WORKER_GRACE_S, stack.rstrip())
    log.error("stopped (lanes and store closed); exiting without waiting for %d hung thread(s), status %d",
              len(hung), EXIT_WORKER_HUNG)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or EXIT_WORKER_HUNG)


def _joined_at_exit() -> list[threading.Thread]:
    """The live threads Python would wait for before exiting (not daemon threads, not this one)."""
    me = threading.current_thread()
    return [t for t in threading.enumerate() if t.is_alive() and not t.daemon and t is not me]


def _cannot_start(problem: str) -> int:
    log.error("cannot start: %s", problem)
    print(f"parkgate run: cannot start: {problem}", flush=True)
    return 2


def _model_problem(cfg: Config, exc: BaseException) -> str:
    """The model error in words, naming the config key (found by loading each file again) and the fix."""
    from edge.doctor import model_problem

    found = model_problem(cfg.vision)
    if found is None:
        return f"the plate models (vision.detector_model, vision.ocr_model, vision.ocr_config): {exc}"
    return f"{found}; fix: {found.fix} (parkgate doctor checks them)"

