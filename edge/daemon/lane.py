"""One lane in the daemon's asyncio loop: gate driver events in, the pure lane machine
(:func:`edge.lanes.machine.step`), its commands carried out on the gate, the camera and the store.

:meth:`LaneShell.feed` applies an event and everything it causes (a decision loops back as ``Decided``,
a failing open as ``GateFault``) before returning; :meth:`LaneShell.tick` fires the machine's due
timeout. A command that raises never escapes: a failing open becomes a :class:`GateFault` of the pass it
opens, a failing close, decision or camera start is logged and alerted, and the machine's own timeouts
end the pass with a record.

Two clocks: ``clock_ms`` drives the machine (deadlines, debounce) and is monotonic
(:func:`edge.clock.monotonic_ms`); ``wall_ms`` only dates what is recorded: a record's times are
re-based on the wall clock when it is written (its end = the wall clock then, its start that minus its
monotonic duration), so a wall-clock step never stretches or cuts a timeout.

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
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from edge.access.exits import LaneRules, lane_rules
from edge.access.types import Decision, Direction, Reason
from edge.clock import monotonic_ms, wall_clock_ms
from edge.daemon.records import logfmt, pass_log_fields
from edge.identity import mask_plate_or_none
from edge.lanes.machine import (
    Alert,
    BurstDone,
    Close,
    Command,
    Decide,
    Decided,
    Event,
    GateAck,
    GateFault,
    LaneSettings,
    LaneState,
    OpenPulse,
    Outcome,
    PassRecord,
    Phase,
    PresenceOff,
    PresenceOn,
    Record,
    SafetyOff,
    SafetyOn,
    StartBurst,
    Timeout,
    step,
)
from edge.metrics import LatencyHistogram
from edge.vision.types import PlateRead
from firmware_bridge.gate import GateDriver
from firmware_bridge.messages import EventKind

log = logging.getLogger(__name__)
TICK_S = 0.05
RECONCILE_S = 1.0
HOLD_WATCHDOG_MS = 1000  # a held gate drops by itself this long after the daemon stops refreshing it
WATCH_QUEUE = 1000  # input changes buffered per watcher (`parkgate gate watch`); beyond: dropped, counted
# A camera burst still running this long is hung (a plate read that never returns: a wedged ONNX call or
# camera driver); a slow one on a loaded Pi takes seconds. The daemon then stops pinging systemd's
# watchdog (edge.daemon.health), which restarts it: the lane's machine only refuses its passes no_read.
HUNG_BURST_MS = 60_000


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
    """One lane: its machine's state, fed events and carrying out the machine's commands on the gate
    driver, the camera's ``burst(burst_no, frames)``, the lane's ``passes`` and ``on_alert(lane, code,
    detail)``."""

    def __init__(self, config: LaneSettings, driver: GateDriver, burst: Callable[[int, int], BurstDone],
                 passes: Passes, on_alert: Callable[[str, str, str], None],
                 wall_ms: Callable[[], int] | None = wall_clock_ms,
                 clock_ms: Callable[[], int] = monotonic_ms) -> None:
        """``wall_ms`` dates the records only (None: records keep ``clock_ms`` times, as in pure tests);
        the lane's timeouts run on ``clock_ms``."""
        self.config = config
        self.state = LaneState()
        self.clock_ms = clock_ms
        self.wall_ms = wall_ms
        lane = config.lane
        self.rules = lane_rules(lane.direction, lane.exit_policy, lane.anti_passback)
        self.driver = driver
        self._burst = burst
        self.passes = passes
        self._on_alert = on_alert
        self.stats = LaneStats()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._opens: dict[int, asyncio.Task[None]] = {}  # pass number -> its open, until it answers
        self._bursts: dict[int, int] = {}  # burst number -> when it started (clock_ms), until it returns
        self._armed_at: float | None = None
        self.link_up = True
        self.held = False  # an operator holds the gate open: the machine's close is not sent
        self._holds = 0  # hold/release calls so far: a status poll that spans one cannot judge `held`
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
        """Apply one event and everything it causes (decisions, gate faults) before returning."""
        if isinstance(event, PresenceOn) and not self.state.presence:
            self._armed_at = time.perf_counter()
        pending: deque[Event] = deque([event])
        while pending:
            self.state, commands = step(self.config, self.state, pending.popleft(), self.clock_ms())
            for command in commands:
                follow_up = self._execute(command)
                if follow_up is not None:
                    pending.append(follow_up)
        self._cancel_given_up_opens()

    def tick(self) -> None:
        """Fire the machine's due timeout (the ack timeout among them); called every ``TICK_S``."""
        deadline = self.state.deadline_ms
        if deadline is not None and self.clock_ms() >= deadline:
            self.feed(Timeout())

    def _cancel_given_up_opens(self) -> None:
        """Cancel every open whose pass the machine no longer waits for: it left OPENING through the
        ack timeout and recorded a gate fault, so a retry reaching the controller now would open the
        gate for a pass already given up (or, credited later, for the next car)."""
        state = self.state
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
            changes, holds = self._input_changes, self._holds
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
            if self.held and not status.held and self._holds == holds:
                self._hold_lost()
            now = (status.presence, status.safety)
            if self._input_changes != changes:
                previous = None
                continue
            state = self.state
            if now == previous and now != (state.presence, state.safety):
                if status.presence != state.presence:
                    self.feed(PresenceOn() if status.presence else PresenceOff())
                if status.safety != state.safety:
                    self.feed(SafetyOn() if status.safety else SafetyOff())
            previous = now

    def _tell_watchers(self, kind: str, value: int) -> None:
        change = {"at_ms": self.now_ms(), "lane": self.config.lane_id, "kind": kind, "value": value}
        for queue in self.watchers:
            try:
                queue.put_nowait(change)
            except asyncio.QueueFull:
                self.watch_dropped += 1

    async def hold(self) -> None:
        """Hold the gate open until :meth:`release` (the driver keeps it alive; it drops by itself
        within ``HOLD_WATCHDOG_MS`` if this process dies)."""
        self._holds += 1
        await self.driver.hold_open(HOLD_WATCHDOG_MS)
        self.held = True

    async def release(self) -> None:
        """End a hold; the barrier closes by itself once its loops are clear."""
        self._holds += 1
        await self.driver.release()
        self.held = False

    def _hold_lost(self) -> None:
        """The controller no longer holds the gate (its watchdog dropped the hold while the cable was
        out, or it restarted): the lane closes after passes again, and the operator is told."""
        self.held = False
        self.alert("hold_lost", f"lane {self.config.lane_id}: the controller dropped the operator's hold "
                                "(link lost or controller restarted): the gate closes after each pass; "
                                "hold again to keep it open")

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

    # -- the machine's commands -------------------------------------------------------------------

    def _execute(self, command: Command) -> Event | None:
        try:
            match command:
                case StartBurst(burst_no=burst_no, frames=frames):
                    self._spawn(self._run_burst(burst_no, frames))
                case Decide(pass_no=pass_no, read=read):
                    decision = self.passes.decide(read, self.config.direction, self.rules)
                    self._note_read(read, decision)
                    return Decided(pass_no, decision)
                case OpenPulse(ms=ms):
                    opening = self.opening_pass()
                    self._journal(opening)  # raises, and so keeps the gate shut, if that fails
                    self._opens[opening.pass_no] = self._spawn(self._open(ms, opening.pass_no))
                case Close():
                    self._close()
                case Record(event=record):
                    record = self.to_wall(record)
                    self._count(record)
                    self.passes.record(record)
                case Alert(code=code, detail=detail):
                    self.alert(code, detail)
        except Exception as exc:  # noqa: BLE001 - a failing command must not stop the lane
            return self._command_failed(command, exc)
        return None

    def _journal(self, opening: PassRecord) -> None:
        """Journal a granted pass before its gate opens. If that fails the gate stays shut (no open
        without a durable record), except for an operator's open: on a full or read-only disk the gates
        stay shut for everyone else, so the operator is the way out; the pass then waits in memory like
        any pass the store refuses, and the system journal has the operator's line."""
        try:
            self.passes.journal(opening)
        except Exception as exc:
            decision = opening.decision
            if decision is None or decision.reason is not Reason.MANUAL_OPEN:
                raise
            log.error("lane %s: manual open of pass %d without its journal row (%s): recorded when the "
                      "store takes writes again", self.config.lane_id, opening.pass_no, exc)

    def _command_failed(self, command: Command, exc: Exception) -> Event | None:
        lane = self.config.lane_id
        what = type(command).__name__
        gate_command = isinstance(command, OpenPulse | Close)
        log.error("lane %s: %s failed: %s", lane, what, exc, exc_info=not gate_command)
        if isinstance(command, OpenPulse):
            return GateFault(self.state.pass_no, f"{what} failed: {exc}")
        try:
            if isinstance(command, Close):
                self.alert("gate_fault", f"lane {lane}: {what} failed: {exc}")
            elif not isinstance(command, Alert):
                self.alert(f"port_{what.lower()}", f"lane {lane}: {what} failed: {exc}")
        except Exception:  # noqa: BLE001
            log.exception("lane %s: alerting failed too", lane)
        return None

    def now_ms(self) -> int:
        """What the lane's status (last read, gate error) and its watchers are dated with: ``wall_ms`` (the
        daemon's best time), as its records and the daemon's alerts; the wall clock without one."""
        return (self.wall_ms or wall_clock_ms)()

    def to_wall(self, record: PassRecord) -> PassRecord:
        """``record`` with its times on the wall clock (a record's times are on ``clock_ms``)."""
        if self.wall_ms is None:
            return record
        offset = self.wall_ms() - self.clock_ms()
        return replace(record, started_ms=record.started_ms + offset, ended_ms=record.ended_ms + offset)

    async def _run_burst(self, burst_no: int, frames: int) -> None:
        self._bursts[burst_no] = self.clock_ms()
        try:
            result = await asyncio.to_thread(self._burst, burst_no, frames)
        except Exception as exc:  # noqa: BLE001 - the machine's burst timeout ends the pass
            self.alert("camera_error", f"lane {self.config.lane_id}: burst failed: {exc}")
            return
        finally:
            self._bursts.pop(burst_no, None)
        self.feed(result)

    def hung(self) -> str | None:
        """Why the lane is hung: a camera burst that has run for :data:`HUNG_BURST_MS` or more; else None."""
        if not self._bursts:
            return None
        running_ms = self.clock_ms() - min(self._bursts.values())
        if running_ms < HUNG_BURST_MS:
            return None
        return (f"lane {self.config.lane_id}: camera burst running for {running_ms // 1000} s "
                "(a plate read or the camera hangs)")

    def _note_read(self, read: PlateRead, decision: Decision) -> None:
        """The lane's last read, masked, for `parkgate status` and the console."""
        self.stats.last_read = {"plate_masked": mask_plate_or_none(read.text),
                                "confidence": round(read.confidence, 3), "decision": str(decision.reason),
                                "allow": decision.allow, "at_ms": self.now_ms()}

    def opening_pass(self) -> PassRecord:
        """The pass whose gate is being opened, as it would be recorded had it passed now."""
        state = self.state
        return self.to_wall(PassRecord(self.config.lane_id, self.config.direction, state.pass_no,
                                       Outcome.PASSED, state.started_ms, self.clock_ms(),
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

    def _close(self) -> None:
        if self.held:
            log.info("lane %s: gate held open by an operator: not closed after the pass", self.config.lane_id)
            return
        self._spawn(self._send_close())

    async def _send_close(self) -> None:
        try:
            await self.driver.close()
        except Exception as exc:  # noqa: BLE001 - the pulse ends by itself; the barrier closes anyway
            self.stats.gate_errors += 1
            self._gate_failed(f"close failed: {exc}")
            log.info("lane %s: close not done (%s); the pulse closes the gate by itself",
                     self.config.lane_id, exc)

    def _count(self, event: PassRecord) -> None:
        """The pass's log line and the lane's counters. Latency: from the car on the loop to the
        controller's ack when the gate opened; else how long the pass took."""
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

    def _gate_failed(self, error: str) -> None:
        """The controller's last failure, for `parkgate status` (kept with its time)."""
        self.stats.gate_error = {"error": error[:300], "at_ms": self.now_ms()}

    def alert(self, code: str, detail: str) -> None:
        self.stats.alerts += 1
        self._on_alert(self.config.lane_id, code, detail)
