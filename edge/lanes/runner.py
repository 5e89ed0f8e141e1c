"""The imperative shell around one lane's state machine: events in, commands out to real ports.

The daemon owns one :class:`LaneRunner` per lane and calls :meth:`LaneRunner.feed` from its event
loop (loop-detector changes, a finished camera burst, gate acknowledgements, operator commands) and
:meth:`LaneRunner.tick` periodically so timeouts fire. Decisions are made synchronously through the
injected ``decide`` port (pure code over the local cache: no network on the path to the gate).

A port that raises never escapes: a failing open becomes a :class:`GateFault` of the pass it opens,
a failing close, decision or camera start is logged and alerted, and the machine's own timeouts end
the pass with a record. A failing ``record`` is logged at ERROR and alerted; the store is responsible
for making ``record`` durable.

Two clocks: ``clock_ms`` drives the machine (deadlines, debounce) and must be monotonic in the daemon
(:func:`monotonic_ms`); ``wall_ms`` only dates what is recorded: a record's times are re-based on
the wall clock when it is written (its end = the wall clock then, its start that minus its
monotonic duration), so a wall-clock step never stretches or cuts a timeout.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from edge.access.types import Decision
from edge.lanes.machine import (
    Alert,
    Close,
    Command,
    Decide,
    Decided,
    Event,
    GateFault,
    LaneSettings,
    LaneState,
    OpenPulse,
    PassRecord,
    Record,
    StartBurst,
    Timeout,
    step,
)
from edge.vision.types import PlateRead

log = logging.getLogger(__name__)


class LanePorts(Protocol):
    """What a lane needs from the outside world (gate driver, camera, cache, store, alerting)."""

    def start_burst(self, burst_no: int, frames: int) -> None:
        """Start capturing; report the result later with ``feed(BurstDone(burst_no, ...))``."""

    def decide(self, pass_no: int, read: PlateRead) -> Decision: ...

    def open_pulse(self, ms: int) -> None:
        """Open for the pass in ``state.pass_no``; answer later with ``feed(GateAck(pass_no))`` or
        ``feed(GateFault(pass_no, detail))`` naming that pass."""

    def close(self) -> None: ...

    def record(self, event: PassRecord) -> None: ...

    def alert(self, code: str, detail: str) -> None: ...


def monotonic_ms() -> int:
    """The lane machine's clock: milliseconds that never step (CLOCK_MONOTONIC)."""
    return time.monotonic_ns() // 1_000_000


class LaneRunner:
    def __init__(self, config: LaneSettings, ports: LanePorts, clock_ms: Callable[[], int],
                 state: LaneState | None = None, wall_ms: Callable[[], int] | None = None) -> None:
        """``wall_ms`` None: the records keep ``clock_ms`` times (one clock, as in pure tests)."""
        self.config = config
        self.ports = ports
        self.clock_ms = clock_ms
        self.wall_ms = wall_ms
        self.state = state or LaneState()

    def to_wall(self, record: PassRecord) -> PassRecord:
        """``record`` with its times on the wall clock (a record's times are on ``clock_ms``)."""
        if self.wall_ms is None:
            return record
        offset = self.wall_ms() - self.clock_ms()
        return replace(record, started_ms=record.started_ms + offset, ended_ms=record.ended_ms + offset)

    def feed(self, event: Event) -> None:
        """Apply one event and everything it causes (decisions, gate faults) before returning."""
        pending: deque[Event] = deque([event])
        while pending:
            self.state, commands = step(self.config, self.state, pending.popleft(), self.clock_ms())
            for command in commands:
                follow_up = self._execute(command)
                if follow_up is not None:
                    pending.append(follow_up)

    def tick(self) -> None:
        """Fire the current timeout if it is due (call every ~100 ms)."""
        deadline = self.state.deadline_ms
        if deadline is not None and self.clock_ms() >= deadline:
            self.feed(Timeout())

    def _execute(self, command: Command) -> Event | None:
        lane = self.config.lane_id
        try:
            match command:
                case StartBurst(burst_no=n, frames=frames):
                    self.ports.start_burst(n, frames)
                case Decide(pass_no=n, read=read):
                    return Decided(n, self.ports.decide(n, read))
                case OpenPulse(ms=ms):
                    self.ports.open_pulse(ms)
                case Close():
                    self.ports.close()
                case Record(event=gate_event):
                    self.ports.record(self.to_wall(gate_event))
                case Alert(code=code, detail=detail):
                    log.warning("lane %s alert %s: %s", lane, code, detail)
                    self.ports.alert(code, detail)
        except Exception as exc:  # noqa: BLE001 - a port failure must not stop the lane
            return self._port_failed(command, exc)
        return None

    def _port_failed(self, command: Command, exc: Exception) -> Event | None:
        lane = self.config.lane_id
        what = type(command).__name__
        gate_command = isinstance(command, OpenPulse | Close)
        log.error("lane %s: %s failed: %s", lane, what, exc, exc_info=not gate_command)
        if isinstance(command, OpenPulse):
            return GateFault(self.state.pass_no, f"{what} failed: {exc}")
        if isinstance(command, Close):
            self._alert("gate_fault", f"lane {lane}: {what} failed: {exc}")
        elif not isinstance(command, Alert):
            self._alert(f"port_{what.lower()}", f"lane {lane}: {what} failed: {exc}")
        return None

    def _alert(self, code: str, detail: str) -> None:
        try:
            self.ports.alert(code, detail)
        except Exception:  # noqa: BLE001
            log.exception("lane %s: alert port failed too", self.config.lane_id)
