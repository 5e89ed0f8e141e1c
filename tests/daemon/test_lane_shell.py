"""The daemon's lane shell: the machine's commands reach the gate, the camera and the store, decisions
loop back, failures never escape; an open whose ack timed out is cancelled, an answered one credits its
pass; a stale status poll never undoes a loop event."""

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import edge.daemon.lane as lane_shell
from edge.access.types import Decision, Direction, Reason
from edge.config import LaneConfig
from edge.daemon.lane import LaneShell
from edge.lanes.machine import (
    BurstDone,
    LaneSettings,
    ManualOpen,
    Outcome,
    PassRecord,
    Phase,
    PresenceOff,
    PresenceOn,
    SafetyOff,
    SafetyOn,
    Snapshot,
)
from edge.vision.types import PlateRead
from firmware_bridge.gate import GateStatus, InputChange
from firmware_bridge.messages import EventKind, Fault, Position

CFG = LaneSettings(LaneConfig(name="entry-1", direction="entry"))


@dataclass
class World:
    """What a lane drives, in memory: a gate driver, a camera burst and the store's passes. ``fail``
    names the parts that raise; ``calls`` logs what the lane did, in order. The gate acknowledges each
    open; the camera answers with ``FRAMES`` unless ``camera_hangs`` (then it waits for the test's end)."""

    allow: bool = True
    fail: set[str] = field(default_factory=set)
    calls: list[tuple] = field(default_factory=list)
    records: list[PassRecord] = field(default_factory=list)
    camera_hangs: bool = False
    released: threading.Event = field(default_factory=threading.Event)

    def _call(self, name: str, *args: object) -> None:
        self.calls.append((name, *args))
        if name in self.fail:
            raise OSError(f"{name} broke")

    def burst(self, burst_no: int, frames: int) -> BurstDone:
        self._call("start_burst", burst_no, frames)
        if self.camera_hangs:
            self.released.wait(10)
        return BurstDone(burst_no, FRAMES, Snapshot("/snap/1.jpg", "00" * 32))

    async def open_pulse(self, ms: int) -> None:
        self._call("open_pulse", ms)

    async def close(self) -> None:
        self._call("close")

    # edge.daemon.lane.Passes
    def decide(self, read: PlateRead, direction: Direction, rules: object = None) -> Decision:
        self._call("decide", read.text)
        return Decision(self.allow, Reason.BOOKING_VALID if self.allow else Reason.NO_BOOKING, None)

    def journal(self, opening: PassRecord) -> None:
        pass

    def journal_opened(self, lane: str, pass_no: int) -> None:
        pass

    def record(self, event: PassRecord) -> None:
        self._call("record", event.outcome)
        self.records.append(event)

    def alert(self, lane: str, code: str, detail: str) -> None:
        self._call("alert", code)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000

    def __call__(self) -> int:
        return self.now


FRAMES = tuple(PlateRead("AB123CD", 0.9, (0.9,) * 7) for _ in range(3))


async def _settle() -> None:
    """Let the lane's spawned work run: gate commands, and a camera burst in its worker thread."""
    for _ in range(5):
        await asyncio.sleep(0.01)


def on_lane(world: World, body: Callable[[LaneShell, Clock], Awaitable[None]], *,
            wall: Callable[[], int] | None = None) -> None:
    """Run ``body`` with a lane shell over ``world`` on a test clock (its records keep that clock's
    times unless ``wall`` dates them)."""
    async def scenario() -> None:
        clock = Clock()
        shell = LaneShell(CFG, world, world.burst, world, world.alert,  # type: ignore[arg-type]
                          wall_ms=wall, clock_ms=clock)
        try:
            await body(shell, clock)
        finally:
            world.released.set()
            await shell.aclose()

    asyncio.run(scenario())


async def drive_through(lane: LaneShell) -> None:
    """A car onto the loop, read and let through, then over the safety loop and away."""
    lane.feed(PresenceOn())
    await _settle()
    for event in (PresenceOff(), SafetyOn(), SafetyOff()):
        lane.feed(event)
    await _settle()


def test_a_full_pass_through_the_lane() -> None:
    world = World()

    async def body(lane: LaneShell, clock: Clock) -> None:
        await drive_through(lane)

    on_lane(world, body)
    assert [c[0] for c in world.calls] == ["start_burst", "decide", "open_pulse", "record", "close"]
    assert world.records[0].outcome is Outcome.PASSED
    assert world.records[0].snapshot == Snapshot("/snap/1.jpg", "00" * 32)


def test_tick_fires_due_timeouts_only() -> None:
    world = World(camera_hangs=True)

    async def body(lane: LaneShell, clock: Clock) -> None:
        lane.feed(PresenceOn())
        await _settle()
        lane.tick()
        assert len(world.calls) == 1
        clock.now += CFG.burst_timeout_ms
        lane.tick()
        await _settle()
        assert world.calls[-2:] == [("alert", "camera_timeout"), ("start_burst", 2, 5)]

    on_lane(world, body)


MINUTE, HOUR = 60_000, 3_600_000


def test_a_wall_clock_step_forward_during_a_pass_neither_ends_it_nor_misdates_it() -> None:
    """NTP steps the wall clock +10 min while the car is under the open barrier: the lane runs on the
    monotonic clock, so no passage timeout fires; the record is dated on the (stepped) wall clock."""
    world, wall = World(), Clock()
    wall.now = 1_700_000_000_000

    async def body(lane: LaneShell, mono: Clock) -> None:
        lane.feed(PresenceOn())
        await _settle()
        assert lane.state.phase is Phase.PASSING
        mono.now += 2_000
        wall.now += 2_000 + 10 * MINUTE
        lane.tick()
        assert lane.state.phase is Phase.PASSING and not world.records
        for event in (SafetyOn(), SafetyOff()):
            lane.feed(event)

    on_lane(world, body, wall=wall)
    [record] = world.records
    assert record.outcome is Outcome.PASSED
    assert (record.started_ms, record.ended_ms) == (wall.now - 2_000, wall.now)


def test_a_wall_clock_step_back_does_not_deafen_the_lane() -> None:
    """The wall clock steps back 1 h: the burst timeout still fires on time and the next car is read."""
    world, wall = World(camera_hangs=True), Clock()
    wall.now = 1_700_000_000_000

    async def body(lane: LaneShell, mono: Clock) -> None:
        lane.feed(PresenceOn())
        await _settle()
        wall.now -= HOUR
        mono.now += CFG.burst_timeout_ms
        lane.tick()
        await _settle()
        assert world.calls[-2:] == [("alert", "camera_timeout"), ("start_burst", 2, 5)]
        lane.feed(BurstDone(2, FRAMES))
        await _settle()
        assert world.calls[-1] == ("open_pulse", CFG.open_pulse_ms)

    on_lane(world, body, wall=wall)


def test_failed_open_becomes_a_gate_fault_and_is_recorded() -> None:
    world = World(fail={"open_pulse"})

    async def body(lane: LaneShell, clock: Clock) -> None:
        lane.feed(PresenceOn())
        await _settle()

    on_lane(world, body)
    assert world.records[0].outcome is Outcome.GATE_FAULT and "open_pulse broke" in world.records[0].detail
    assert ("close",) in world.calls and ("alert", "gate_fault") in world.calls


def test_the_lanes_last_read_and_gate_error_are_dated_with_the_daemons_best_time() -> None:
    """The wall clock 3 days behind, the daemon's best time (``wall``) on its floor: the lane's last read
    (the MQTT ``reads`` message, `parkgate status`) and its gate error were dated with the bare wall clock,
    3 days before the pass's own record and the alerts of the same moment."""
    world, best = World(fail={"open_pulse"}), Clock()
    best.now = 1_900_000_000_000

    async def body(lane: LaneShell, mono: Clock) -> None:
        lane.feed(PresenceOn())
        await _settle()
        assert lane.stats.last_read is not None and lane.stats.gate_error is not None
        assert (lane.stats.last_read["at_ms"], lane.stats.gate_error["at_ms"]) == (best.now, best.now)

    on_lane(world, body, wall=best)
    assert world.records[0].outcome is Outcome.GATE_FAULT and world.records[0].ended_ms == best.now


def test_failed_decision_ends_in_a_recorded_timeout() -> None:
    world = World(fail={"decide"})

    async def body(lane: LaneShell, clock: Clock) -> None:
        lane.feed(PresenceOn())
        await _settle()
        assert ("alert", "port_decide") in world.calls and lane.state.phase is Phase.DECIDING
        clock.now += CFG.decide_timeout_ms
        lane.tick()

    on_lane(world, body)
    assert [r.outcome for r in world.records] == [Outcome.DECIDE_TIMEOUT]
    assert not any(c[0] == "open_pulse" for c in world.calls)


def test_failing_record_and_alert_do_not_stop_the_lane() -> None:
    world = World(fail={"record", "alert"})

    async def body(lane: LaneShell, clock: Clock) -> None:
        lane.feed(PresenceOn())
        await _settle()
        assert lane.state.phase is Phase.PASSING
        for event in (SafetyOn(), PresenceOff(), SafetyOff()):  # the record fails in this feed: never raises
            lane.feed(event)
        assert lane.state.phase is Phase.IDLE
        assert ("record", Outcome.PASSED) in world.calls and ("alert", "port_record") in world.calls
        lane.feed(PresenceOn())  # the next car is served
        assert lane.state.phase is Phase.CAPTURING

    on_lane(world, body)


def test_failed_close_is_alerted_and_the_lane_goes_on() -> None:
    world = World(fail={"close"})

    async def body(lane: LaneShell, clock: Clock) -> None:
        await drive_through(lane)
        assert lane.state.phase is Phase.IDLE
        assert lane.stats.gate_errors == 1 and "close broke" in (lane.stats.gate_error or {}).get("error", "")

    on_lane(world, body)
    assert [r.outcome for r in world.records] == [Outcome.PASSED] and ("close",) in world.calls


# ---- the daemon's lane shell --------------------------------------------------------------------
class SilentGate:
    """A controller that never answers an open (the client still retrying); notes the open's fate."""

    def __init__(self) -> None:
        self.opens, self.closes, self.open_cancelled = 0, 0, False

    async def open_pulse(self, pulse_ms: int) -> None:
        self.opens += 1
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.open_cancelled = True
            raise

    async def close(self) -> None:
        self.closes += 1


class AnsweringGate(SilentGate):
    async def open_pulse(self, pulse_ms: int) -> None:
        self.opens += 1


@dataclass
class ShellPorts:
    records: list[PassRecord] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    opened: list[tuple[str, int]] = field(default_factory=list)

    def shell(self, gate: SilentGate, clock: Clock) -> LaneShell:
        return LaneShell(CFG, gate, self.unused, self, lambda lane, code, detail: self.alerts.append(code),
                         clock_ms=clock)

    def unused(self, *args: object) -> BurstDone:
        raise AssertionError("a manual open needs no camera and no decision")

    # edge.daemon.lane.Passes
    def decide(self, read: PlateRead, direction: Direction, rules: object = None) -> Decision:
        raise AssertionError("a manual open needs no camera and no decision")

    def journal(self, opening: PassRecord) -> None:
        pass

    def journal_opened(self, lane: str, pass_no: int) -> None:
        self.opened.append((lane, pass_no))

    def record(self, record: PassRecord) -> None:
        self.records.append(record)


async def manually_opened(gate: SilentGate) -> tuple[LaneShell, ShellPorts, Clock]:
    """A lane on ``gate`` after an operator's open (it needs no camera and no decision)."""
    ports, clock = ShellPorts(), Clock()
    shell = ports.shell(gate, clock)
    shell.feed(ManualOpen("desk"))
    await _settle()
    return shell, ports, clock


def test_shell_cancels_the_open_of_a_pass_whose_ack_timed_out() -> None:
    async def scenario() -> None:
        gate = SilentGate()
        shell, ports, clock = await manually_opened(gate)
        assert gate.opens == 1 and shell.state.phase is Phase.OPENING
        clock.now += CFG.ack_timeout_ms
        shell.tick()
        await _settle()
        assert gate.open_cancelled, "the open kept retrying for a pass already recorded as a fault"
        assert [r.outcome for r in ports.records] == [Outcome.GATE_FAULT] and gate.closes == 1
        await shell.aclose()

    asyncio.run(scenario())


def test_shell_credits_an_answered_open_to_its_own_pass() -> None:
    async def scenario() -> None:
        gate = AnsweringGate()
        shell, ports, _ = await manually_opened(gate)
        assert shell.state.phase is Phase.PASSING and ports.opened == [("entry-1", 1)]
        assert "late_gate_ack" not in ports.alerts
        await shell.aclose()

    asyncio.run(scenario())


class RacingGate(AnsweringGate):
    """Both loops clear until, while the third status poll is being answered, a car rolls onto the
    presence loop: its event is handled before the poll's (older) answer reaches the lane."""

    def __init__(self) -> None:
        super().__init__()
        self.polls, self.presence = 0, False
        self.changes: asyncio.Queue[InputChange] = asyncio.Queue()

    async def status(self) -> GateStatus:
        self.polls += 1
        answer = GateStatus(Position.CLOSED, self.presence, False, False, Fault.NONE, None)
        if self.polls == 3:
            self.presence = True
            self.changes.put_nowait(InputChange(EventKind.PRESENCE, 1))
            for _ in range(10):
                await asyncio.sleep(0)
        return answer

    async def events(self) -> AsyncIterator[InputChange]:
        while True:
            yield await self.changes.get()


def test_a_status_poll_answered_before_a_loop_event_does_not_undo_it(monkeypatch) -> None:
    """`make chaos` 2026-12-02: a car was abandoned at the loop by a stale 'presence off' from the
    lane's status reconciliation, whose answer predated the car's presence event."""
    monkeypatch.setattr(lane_shell, "RECONCILE_S", 0.001)

    async def scenario() -> None:
        gate, ports, clock = RacingGate(), ShellPorts(), Clock()
        released = threading.Event()
        shell = LaneShell(CFG, gate, lambda n, frames: released.wait(5) and BurstDone(n, ()),
                          ports, lambda lane, code, detail: None, clock_ms=clock)
        fed: list[str] = []
        feed = shell.feed

        def spy(event: object) -> None:
            fed.append(type(event).__name__)
            feed(event)  # type: ignore[arg-type]

        shell.feed = spy  # type: ignore[method-assign]
        running = asyncio.create_task(shell.run())
        while gate.polls < 6:
            await asyncio.sleep(0.005)
        assert "PresenceOff" not in fed and shell.state.presence, fed
        released.set()
        running.cancel()
        with contextlib.suppress(BaseException):
            await running
        await shell.aclose()

    asyncio.run(scenario())


class DroppingGate(AnsweringGate):
    """A controller that takes an operator's hold, then drops it by itself (its watchdog fired while
    the cable was out, or it restarted): its status says so from the ``drop_after``-th poll on."""

    def __init__(self, drop_after: int) -> None:
        super().__init__()
        self.polls, self.drop_after, self.holding = 0, drop_after, False

    async def hold_open(self, watchdog_ms: int) -> None:
        self.holding = True

    async def release(self) -> None:
        self.holding = False

    async def status(self) -> GateStatus:
        self.polls += 1
        if self.polls >= self.drop_after:
            self.holding = False
        return GateStatus(Position.OPEN, False, False, self.holding, Fault.NONE, None)

    async def events(self) -> AsyncIterator[InputChange]:
        await asyncio.Event().wait()
        yield InputChange(EventKind.PRESENCE, 0)  # never reached


def test_a_hold_the_controller_dropped_is_no_longer_believed(monkeypatch) -> None:
    """Review 2026-12-03: after a cable pull the controller's watchdog ended the hold, but the lane
    still said HELD OPEN and skipped its close after every pass."""
    monkeypatch.setattr(lane_shell, "RECONCILE_S", 0.001)

    async def scenario() -> None:
        gate, ports, clock = DroppingGate(drop_after=4), ShellPorts(), Clock()
        shell = ports.shell(gate, clock)
        await shell.hold()
        running = asyncio.create_task(shell.run())
        while gate.polls < 3:
            await asyncio.sleep(0.001)
        assert shell.held and "hold_lost" not in ports.alerts  # held while the controller says so
        while gate.polls < 6:
            await asyncio.sleep(0.001)
        assert not shell.held and ports.alerts.count("hold_lost") == 1
        await shell.hold()  # the operator holds again: believed again
        assert shell.held
        running.cancel()
        with contextlib.suppress(BaseException):
            await running
        await shell.aclose()

    asyncio.run(scenario())
