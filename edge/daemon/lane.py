"""One lane in the daemon's asyncio loop: gate driver events in, the lane machine, ports out.

Everything that touches the lane machine runs on the event loop thread. Slow or blocking work
(camera burst + ONNX inference) runs in a worker thread and comes back as an event; gate commands
are asyncio tasks whose result comes back as ``GateAck``/``GateFault`` naming the pass they answer.
The decision, the pass journal and the recording are synchronous calls on the local store: no network
on the path to the gate.

An open the machine gave up on (its ack timed out: the pass is recorded as a gate fault) is cancelled,
so the client sends no further retry of it; the machine's Close follows the fault. A retry the
controller already received may still open the gate: its late ack, if it comes, raises an alert.

Log the grant before actuating: ``open_pulse`` first journals the pass (a committed local SQLite
write) and only then sends the pulse, and marks the journal row opened when the controller
acknowledges it; if the journal write fails the gate stays shut and the pass ends as a gate fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from edge.access.exits import LaneRules, lane_rules
from edge.access.types import Decision, Direction
from edge.daemon.records import logfmt, pass_log_fields
from edge.identity import mask_plate_or_none
from edge.lanes.machine import (
    BurstDone,
    Event,
    GateAck,
    GateFault,
    LaneSettings,
    Outcome,
    PassRecord,
    Phase,
    PresenceOff,
    PresenceOn,
    SafetyOff,
    SafetyOn,
)
from edge.lanes.runner import LaneRunner, monotonic_ms
from edge.metrics import LatencyHistogram
from edge.store import wall_clock_ms
from edge.vision.types import PlateRead
from firmware_bridge.gate import GateDriver
from firmware_bridge.messages import EventKind

log = logging.getLogger(__name__)
TICK_S = 0.05
RECONCILE_S = 1.0
HOLD_WATCHDOG_MS = 1000  # a held gate drops by itself this long after the daemon stops refreshing it
WATCH_QUEUE = 1000  # input changes buffered per watcher (`parkgate gate watch`); beyond: dropped, counted


@dataclass
class LaneStats:
    passes: int = 0
    opens: int = 0
    refused: int = 0
    alerts: int = 0
    gate_errors: int = 0
    open_latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=500))
    last_read: dict[str, Any] | None = None
    outcomes: dict[str, int] = field(default_factory=dict)
    refusals: dict[str, int] = field(default_factory=dict)  # refused passes by reason (metrics)
    gate_error: dict[str, Any] | None = None  # the controller's last failure: {"error", "at_ms"} (status)
    gate_position: str | None = None  # as the controller last reported it: closed, opening, open, ...
    open_latency: LatencyHistogram = field(default_factory=LatencyHistogram)  # car on the loop -> gate ack
    read_from: dict[str, int] = field(default_factory=dict)  # passes by where their read came from


class Passes(Protocol):
    """What a lane asks the local store about its passes (:class:`edge.daemon.gatekeeper.Gatekeeper`)."""

    def decide(self, read: PlateRead, direction: Direction, rules: LaneRules) -> Decision: ...

    def journal(self, opening: PassRecord) -> None:
        """Commit the granted pass before its gate opens; raises (the gate stays shut) if that fails."""

    def journal_opened(self, lane: str, pass_no: int) -> None: ...

    def record(self, record: PassRecord) -> None: ...


class LaneShell:
    """Implements :class:`edge.lanes.runner.LanePorts` for one lane and drives its runner: the gate
    driver, the camera's ``burst(burst_no, frames)``, the lane's ``passes`` and ``on_alert(lane, code,
    detail)``."""

    def __init__(self, config: LaneSettings, driver: GateDriver, burst: Callable[[int, int], BurstDone],
                 passes: Passes, on_alert: Callable[[str, str, str], None],
                 wall_ms: Callable[[], int] = wall_clock_ms) -> None:
        """``wall_ms`` dates the records only; the lane's timeouts run on the monotonic clock."""
        self.config = config
        lane = config.lane
        self.rules = lane_rules(lane.direction, lane.exit_policy, lane.anti_passback)
        self.driver = driver
        self._burst = burst
        self.passes = passes
        self._on_alert = on_alert
        self.stats = LaneStats()
        self.runner = LaneRunner(config, self, monotonic_ms, wall_ms=wall_ms)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._opens: dict[int, asyncio.Task[None]] = {}  # pass number -> its open, until it answers
        self._armed_at: float | None = None
        self.link_up = True
        self.held = False  # an operator holds the gate open: the machine's close is not sent
        self.watchers: set[asyncio.Queue[dict[str, Any]]] = set()
        self.watch_dropped = 0
        self._input_changes = 0  # loop changes received from the controller (events), for _reconcile

    # -- driving -------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Until cancelled: feed driver events, tick timeouts, reconcile loop states. A vehicle already
        on the loops when the daemon (re)starts is seen at once from the controller's status."""
        with contextlib.suppress(Exception):
            status = await self.driver.status()
            if status.safety:
                self.feed(SafetyOn())
            if status.presence:
                self.feed(PresenceOn())
        async with asyncio.TaskGroup() as group:  # one part failing stops the others: the lane restarts
            for part in (self._events(), self._ticks(), self._reconcile()):
                group.create_task(part)

    def feed(self, event: Event) -> None:
        if isinstance(event, PresenceOn) and not self.runner.state.presence:
            self._armed_at = time.perf_counter()
        self.runner.feed(event)
        self._cancel_given_up_opens()

    def tick(self) -> None:
        """Fire the machine's due timeout (the ack timeout among them)."""
        self.runner.tick()
        self._cancel_given_up_opens()

    def _cancel_given_up_opens(self) -> None:
        """Cancel every open whose pass the machine no longer waits for: it left OPENING through the
        ack timeout and recorded a gate fault, so a retry reaching the controller now would open the
        gate for a pass already given up (or, credited later, for the next car)."""
        state = self.runner.state
        waiting_for = state.pass_no if state.phase is Phase.OPENING else None
        for pass_no in [n for n in self._opens if n != waiting_for]:
            log.warning("lane %s: open of pass %d cancelled: no ack within %d ms",
                        self.config.lane_id, pass_no, self.config.ack_timeout_ms)
            self._opens.pop(pass_no).cancel()

    async def _events(self) -> None:
        async for event in self.driver.events():
            self._input_changes += 1
            self._tell_watchers(event.kind.name.lower(), event.value)
            if event.kind is EventKind.PRESENCE:
                self.feed(PresenceOn() if event.value else PresenceOff())
            elif event.kind is EventKind.SAFETY:
                self.feed(SafetyOn() if event.value else SafetyOff())
            elif event.kind in (EventKind.FAULT, EventKind.WATCHDOG_RELEASE) and event.value:
                self.alert("gate_fault_input", f"lane {self.config.lane_id}: controller reports {event}")

    async def _ticks(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self.tick()

    async def _reconcile(self) -> None:
        """Catch loop changes lost while the cable was out: two agreeing status polls that differ from
        what the machine believes become events (one poll alone may predate an event in flight). A poll
        during which an event arrived is dropped: its answer may predate that event (a car that rolled
        onto the loop while the poll was answered was abandoned by a stale "presence off" in `make
        chaos` on 2026-12-02)."""
        previous: tuple[bool, bool] | None = None
        while True:
            await asyncio.sleep(RECONCILE_S)
            changes = self._input_changes
            try:
                status = await self.driver.status()
            except Exception as exc:  # noqa: BLE001 - link down: report, keep trying
                if self.link_up:
                    self._gate_failed(f"status poll failed: {exc}")
                self.link_up = False
                log.debug("lane %s: status poll failed: %s", self.config.lane_id, exc)
                previous = None
                continue
            self.link_up = True
            self.stats.gate_position = getattr(status.position, "name", str(status.position)).lower()
            now = (status.presence, status.safety)
            if self._input_changes != changes:
                previous = None
                continue
            state = self.runner.state
            if now == previous and now != (state.presence, state.safety):
                if status.presence != state.presence:
                    self.feed(PresenceOn() if status.presence else PresenceOff())
                if status.safety != state.safety:
                    self.feed(SafetyOn() if status.safety else SafetyOff())
            previous = now

    def _tell_watchers(self, kind: str, value: int) -> None:
        change = {"at_ms": wall_clock_ms(), "lane": self.config.lane_id, "kind": kind, "value": value}
        for queue in self.watchers:
            try:
                queue.put_nowait(change)
            except asyncio.QueueFull:
                self.watch_dropped += 1

    async def hold(self) -> None:
        """Hold the gate open until :meth:`release` (the driver keeps it alive; it drops by itself
        within ``HOLD_WATCHDOG_MS`` if this process dies)."""
        await self.driver.hold_open(HOLD_WATCHDOG_MS)
        self.held = True

    async def release(self) -> None:
        """End a hold; the barrier closes by itself once its loops are clear."""
        await self.driver.release()
        self.held = False

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    # -- ports ---------------------------------------------------------------------------------------

    def start_burst(self, burst_no: int, frames: int) -> None:
        self._spawn(self._run_burst(burst_no, frames))

    async def _run_burst(self, burst_no: int, frames: int) -> None:
        try:
            result = await asyncio.to_thread(self._burst, burst_no, frames)
        except Exception as exc:  # noqa: BLE001 - the machine's burst timeout ends the pass
            self.alert("camera_error", f"lane {self.config.lane_id}: burst failed: {exc}")
            return
        self.feed(result)

    def decide(self, pass_no: int, read: PlateRead) -> Decision:
        decision = self.passes.decide(read, self.config.direction, self.rules)
        self.stats.last_read = {"plate_masked": mask_plate_or_none(read.text),
                                "confidence": round(read.confidence, 3), "decision": str(decision.reason),
                                "allow": decision.allow, "at_ms": wall_clock_ms()}
        return decision

    def open_pulse(self, ms: int) -> None:
        """Journal the pass (durably; raises, and so keeps the gate shut, if that fails), then open."""
        opening = self.opening_pass()
        self.passes.journal(opening)
        self._opens[opening.pass_no] = self._spawn(self._open(ms, opening.pass_no))

    def opening_pass(self) -> PassRecord:
        """The pass whose gate is being opened, as it would be recorded had it passed now."""
        state = self.runner.state
        return self.runner.to_wall(PassRecord(self.config.lane_id, self.config.direction, state.pass_no,
                                              Outcome.PASSED, state.started_ms, self.runner.clock_ms(),
                                              state.read, state.decision))

    async def _open(self, ms: int, pass_no: int) -> None:
        try:
            await self.driver.open_pulse(ms)
        except Exception as exc:  # noqa: BLE001 - becomes a recorded gate fault
            self._opens.pop(pass_no, None)
            self.stats.gate_errors += 1
            self._gate_failed(f"open failed: {exc}")
            self.feed(GateFault(pass_no, f"open failed: {exc}"))
            return
        self._opens.pop(pass_no, None)  # answered: no longer ours to cancel
        self.stats.opens += 1
        if self._armed_at is not None:
            self.stats.open_latencies_ms.append(round((time.perf_counter() - self._armed_at) * 1000, 1))
        self.feed(GateAck(pass_no))  # first: the machine must see the ack before the vehicle's loop events
        try:
            self.passes.journal_opened(self.config.lane_id, pass_no)
        except Exception:  # noqa: BLE001 - the gate is open: a lost mark only weakens recovery
            log.exception("lane %s: could not mark pass %d opened in the journal",
                          self.config.lane_id, pass_no)

    def close(self) -> None:
        if self.held:
            log.info("lane %s: gate held open by an operator: not closed after the pass", self.config.lane_id)
            return
        self._spawn(self._close())

    async def _close(self) -> None:
        try:
            await self.driver.close()
        except Exception as exc:  # noqa: BLE001 - the pulse ends by itself; the barrier closes anyway
            self.stats.gate_errors += 1
            self._gate_failed(f"close failed: {exc}")
            log.info("lane %s: close not done (%s); the pulse closes the gate by itself",
                     self.config.lane_id, exc)

    def record(self, event: PassRecord) -> None:
        # opened: from the car on the loop to the controller's ack; else how long the pass took
        opened = event.outcome in (Outcome.PASSED, Outcome.NO_PASSAGE) and bool(self.stats.open_latencies_ms)
        latency = self.stats.open_latencies_ms[-1] if opened else float(event.ended_ms - event.started_ms)
        fields = pass_log_fields(event, latency)
        log.info("pass %s", logfmt(fields))
        if opened:
            self.stats.open_latency.observe(latency / 1000)
        if fields["gate"] != "opened":
            self.stats.refusals[fields["reason"]] = self.stats.refusals.get(fields["reason"], 0) + 1
        self.stats.passes += 1
        self.stats.outcomes[str(event.outcome)] = self.stats.outcomes.get(str(event.outcome), 0) + 1
        if event.read_from is not None:
            self.stats.read_from[event.read_from] = self.stats.read_from.get(event.read_from, 0) + 1
        if event.outcome != "passed":
            self.stats.refused += 1
        self.passes.record(event)

    def _gate_failed(self, error: str) -> None:
        """The controller's last failure, for `parkgate status` (kept with its time)."""
        self.stats.gate_error = {"error": error[:300], "at_ms": wall_clock_ms()}

    def alert(self, code: str, detail: str) -> None:
        self.stats.alerts += 1
        self._on_alert(self.config.lane_id, code, detail)
