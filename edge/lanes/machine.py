"""The lane state machine: one vehicle pass at a time, from arming to the recorded gate event.

Pure and event-driven: ``step(config, state, event, now_ms) -> (state, commands)``. The daemon feeds
it events from the loop detectors, the camera burst, the decision and the gate driver, carries out
the commands, and sends :class:`Timeout` when ``state.deadline_ms`` has passed (a Timeout that
arrives early is ignored, so stale timers are harmless). ``now_ms`` is a monotonic clock (the
daemon's ``time.monotonic``): every deadline is a duration, so a wall-clock step (NTP, a Pi booting
with a stale time) neither ends a pass early nor leaves the lane waiting; the shell
(:class:`edge.daemon.lane.LaneShell`) turns the record's times into wall-clock times.

A *pass* starts when the lane arms (presence loop, or camera motion) or on a manual open, and ends
with exactly one :class:`Record`. Guarantees (property-tested):
- at most one :class:`OpenPulse` per pass (a repeated read of the plate that just passed within
  ``debounce_ms`` does not even reach a decision);
- no :class:`Close` while the safety loop under the gate is occupied (closing waits for it);
- every pass ends in a Record, whatever the events: a timeout bounds every waiting phase;
- a gate answer (:class:`GateAck`, :class:`GateFault`) counts only for the pass whose open it answers
  and only while that pass is OPENING: one arriving after its ack timeout changes nothing (it is never
  credited to the next pass) and raises an :class:`Alert`; one arriving later than ``late_ack_ms``
  but in time is recorded with the pass (``detail``: the gate opened late);
- a passage needs a consistent sequence: the safety loop seen occupied during the pass (a SafetyOn,
  or occupied when the pass began) and then clear. A lone "safety clear" (one forged or stray frame)
  is alerted and ignored: the pass keeps waiting for a real passage or its timeout;
- a pass decides only for the vehicle it read: with the presence and safety loops both free when the
  burst ends, the pass ends ``abandoned``; a presence loop free for more than ``loop_gap_ms`` during the
  burst (perhaps another vehicle on it now) ends it ``abandoned`` and starts a new pass that reads
  afresh. (The decision follows in the same step: the shell decides synchronously.)

Phases: IDLE -> CAPTURING (burst) -> DECIDING -> OPENING (pulse sent, waiting for the gate's ack)
-> PASSING (waiting for the vehicle to cross the safety loop) -> [CLOSING while the safety loop is
occupied] -> IDLE. A refused/unread vehicle goes to WAIT_LEAVE until it leaves the presence loop
(or, after ``retry_after_ms`` still standing there, is read again: a booking may have synced).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from functools import cached_property

from edge import config as configuration
from edge.access.types import Decision, Direction, Reason
from edge.vision.consensus import consensus
from edge.vision.types import PlateRead


class Phase(StrEnum):
    IDLE = "idle"
    CAPTURING = "capturing"
    DECIDING = "deciding"
    OPENING = "opening"
    PASSING = "passing"
    CLOSING = "closing"
    WAIT_LEAVE = "wait_leave"


class ArmOn(StrEnum):
    """What starts a pass: the presence (arming) loop, or motion detected by the camera."""

    LOOP = "loop"
    MOTION = "motion"


class Outcome(StrEnum):
    PASSED = "passed"
    DENIED = "denied"
    NO_READ = "no_read"
    ABANDONED = "abandoned"
    NO_PASSAGE = "no_passage"
    GATE_FAULT = "gate_fault"
    DEBOUNCED = "debounced"
    DECIDE_TIMEOUT = "decide_timeout"


class ReadFrom(StrEnum):
    """Where a pass's reads came from: the car's approach track (read while it drove up, taken when the
    loop fired) or a burst of frames read after the trigger."""

    APPROACH = "approach"
    BURST = "burst"


# The config's `trigger` values and what they arm on.
ARM_ON_TRIGGER = {"presence_loop": ArmOn.LOOP, "motion": ArmOn.MOTION}


@dataclass(frozen=True)
class LaneSettings:
    """One lane as the machine runs it: the config's ``[[lanes]]`` table itself (read directly, no copy
    of its values) and the machine's own timeouts."""

    lane: configuration.LaneConfig = configuration.LaneConfig()
    # A burst always ends by itself (edge.daemon.camera.LaneCamera.burst waits at most 2.5 s for frames),
    # but its inference is CPU work: on a busy 2-core box 3 frames took longer than 3 s and the pass
    # ended no_read. This only bounds a camera thread that hangs.
    burst_timeout_ms: int = 8_000
    burst_retries: int = 1
    decide_timeout_ms: int = 2_000
    # Longer than the longest the serial gate client (firmware_bridge/client.py, daemon defaults
    # timeout_s=0.25, retries=3) can take to answer an open: 4 attempts, each up to 0.25 s waiting for a
    # reconnect plus 0.25 s for the reply = 2.0 s; queued behind the lane's other requests on the
    # client's one-at-a-time lock, at most a status poll (2.0 s) and a heartbeat (one attempt, 0.5 s):
    # 4.5 s. (Modbus relay boards: 4 x 0.3 s.) An ack later still (an open queued behind a close) is
    # never credited to another pass: the shell cancels the open when this timeout gives up on it.
    # The parkgate-serial driver also waits up to 2.0 s more for a late reply to the open's last
    # attempt (firmware_bridge.driver.LATE_REPLY_S): 4.5 + 2.0 = 6.5 s.
    ack_timeout_ms: int = 6_500
    late_ack_ms: int = 1_000  # an ack later than this is recorded with the pass ("opened late")
    passage_timeout_ms: int = 60_000
    stuck_alert_ms: int = 30_000
    debounce_ms: int = 10_000
    retry_after_ms: int = 20_000
    # A presence loop free for longer than this while its pass reads may hold another
    # vehicle when it is occupied again: no car leaves a 2 m loop and another drives onto it within a
    # second. A shorter gap is a flicker of the detector (a trailer's hitch, a high-bed truck) and ignored.
    loop_gap_ms: int = 1_000

    @property
    def lane_id(self) -> str:
        return self.lane.name

    @cached_property
    def direction(self) -> Direction:
        return Direction(self.lane.direction)

    @cached_property
    def arm_on(self) -> ArmOn:
        return ARM_ON_TRIGGER[self.lane.trigger]

    @property
    def burst_frames(self) -> int:
        return self.lane.camera.burst_frames

    @property
    def min_votes(self) -> int:
        """Reads that must agree on a plate: two, or one when a burst is a single frame."""
        return min(2, self.lane.camera.burst_frames)

    @property
    def decides_unread(self) -> bool:
        """An exit lane with ``exit_policy = "open"`` (edge.access.exits) lets out vehicles whose plate
        cannot be read, so a pass without a read is decided too instead of ending as ``no_read``."""
        return self.direction is Direction.EXIT and self.lane.exit_policy == "open"

    @property
    def open_pulse_ms(self) -> int:
        return self.lane.gate.pulse_ms


# ---- events -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PresenceOn: ...


@dataclass(frozen=True, slots=True)
class PresenceOff: ...


@dataclass(frozen=True, slots=True)
class SafetyOn: ...


@dataclass(frozen=True, slots=True)
class SafetyOff: ...


@dataclass(frozen=True, slots=True)
class Motion: ...


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The plate crop a burst saved as the pass's evidence: its file and the file's sha256."""

    path: str
    sha256: str


@dataclass(frozen=True, slots=True)
class BurstDone:
    """The camera finished burst ``burst_no``: one best read per frame, and the crop kept as evidence."""

    burst_no: int
    reads: tuple[PlateRead, ...]
    snapshot: Snapshot | None = None
    read_from: ReadFrom = ReadFrom.BURST


@dataclass(frozen=True, slots=True)
class Decided:
    pass_no: int
    decision: Decision


@dataclass(frozen=True, slots=True)
class GateAck:
    """The gate controller acknowledged the open pulse of pass ``pass_no``."""

    pass_no: int


@dataclass(frozen=True, slots=True)
class GateFault:
    """The open pulse of pass ``pass_no`` failed."""

    pass_no: int
    detail: str


@dataclass(frozen=True, slots=True)
class ManualOpen:
    operator: str


@dataclass(frozen=True, slots=True)
class Timeout: ...


Event = (PresenceOn | PresenceOff | SafetyOn | SafetyOff | Motion | BurstDone | Decided | GateAck | GateFault
         | ManualOpen | Timeout)


# ---- commands -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StartBurst:
    burst_no: int
    frames: int


@dataclass(frozen=True, slots=True)
class Decide:
    pass_no: int
    read: PlateRead


@dataclass(frozen=True, slots=True)
class OpenPulse:
    ms: int


@dataclass(frozen=True, slots=True)
class Close: ...


@dataclass(frozen=True, slots=True)
class PassRecord:
    """A finished pass, as the lane machine reports it (local: ``read`` holds the plate); the daemon
    stores it as :class:`edge.store.rows.GateEventRow` (``edge.daemon.records``)."""

    lane_id: str
    direction: Direction
    pass_no: int
    outcome: Outcome
    started_ms: int
    ended_ms: int
    read: PlateRead | None
    decision: Decision | None
    detail: str = ""
    snapshot: Snapshot | None = None
    late_ack_ms: int | None = None  # the gate acknowledged the open this late (over ``late_ack_ms``)
    read_from: ReadFrom | None = None  # where the read that decided the pass came from


@dataclass(frozen=True, slots=True)
class Record:
    event: PassRecord


@dataclass(frozen=True, slots=True)
class Alert:
    code: str
    detail: str


Command = StartBurst | Decide | OpenPulse | Close | Record | Alert


# ---- state --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LaneState:
    phase: Phase = Phase.IDLE
    presence: bool = False
    safety: bool = False
    deadline_ms: int | None = None
    pass_no: int = 0
    burst_no: int = 0
    retries_left: int = 0
    started_ms: int = 0
    read: PlateRead | None = None
    snapshot: Snapshot | None = None
    decision: Decision | None = None
    last_opened_plate: str | None = None
    last_opened_ms: int = 0
    manual_by: str = ""
    passed: bool = False
    safety_seen: bool = False  # the safety loop was occupied at some time during this pass
    crossed: bool = False  # ... and then cleared while the open was still unacknowledged
    opened_ms: int = 0  # when this pass's open pulse was sent
    late_ack_ms: int | None = None  # this pass's gate acknowledged its open late, after this long
    read_from: ReadFrom | None = None  # where this pass's read came from
    presence_off_ms: int = 0  # when the presence loop last went free
    loop_gap: bool = False  # the loop was free longer than loop_gap_ms while this pass read


Step = tuple[LaneState, list[Command]]


def step(config: LaneSettings, state: LaneState, event: Event, now_ms: int) -> Step:
    """Advance one lane by one event."""
    state = _track_loops(config, state, event, now_ms)
    if isinstance(event, Timeout) and (state.deadline_ms is None or now_ms < state.deadline_ms):
        return state, []
    if isinstance(event, GateAck | GateFault) and not _answers_current_open(state, event):
        return state, [_late_gate_answer(config, state, event)]
    return _HANDLERS[state.phase](config, state, event, now_ms)


def _answers_current_open(state: LaneState, answer: GateAck | GateFault) -> bool:
    return state.phase is Phase.OPENING and answer.pass_no == state.pass_no


def _late_gate_answer(config: LaneSettings, state: LaneState, answer: GateAck | GateFault) -> Alert:
    """A gate answer for a pass no longer waiting for it (its ack timed out) changes nothing, but is
    reported: after a late ack the gate opened for a pass already recorded as a gate fault."""
    now = f"lane is at pass {state.pass_no}, {state.phase}"
    if isinstance(answer, GateAck):
        return Alert("late_gate_ack", f"lane {config.lane_id}: gate acknowledged the open of pass "
                                      f"{answer.pass_no} after that pass was given up ({now})")
    return Alert("late_gate_fault", f"lane {config.lane_id}: open of pass {answer.pass_no} failed after "
                                    f"that pass was given up ({now}): {answer.detail}")


def _track_loops(config: LaneSettings, state: LaneState, event: Event, now_ms: int) -> LaneState:
    match event:
        case PresenceOn():
            return replace(state, presence=True, loop_gap=state.loop_gap or _gap(config, state, now_ms))
        case PresenceOff():
            return replace(state, presence=False, presence_off_ms=now_ms)
        case SafetyOn():
            return replace(state, safety=True, safety_seen=True)
        case SafetyOff():
            return replace(state, safety=False)
    return state


def _gap(config: LaneSettings, state: LaneState, now_ms: int) -> bool:
    """The presence loop, free while this pass reads, is occupied again after more than a flicker:
    perhaps by another vehicle, which the pass's reads do not describe."""
    return (state.phase is Phase.CAPTURING and not state.presence
            and now_ms - state.presence_off_ms > config.loop_gap_ms)


def _vehicle_gone(config: LaneSettings, state: LaneState) -> bool:
    """The vehicle this pass read has left the loops, or may have been replaced on the presence loop. A
    vehicle that crept forward off the presence loop onto the safety loop under the barrier is still there:
    abandoning its pass would leave it waiting at a shut gate (at an exit: trapped inside)."""
    return config.arm_on is ArmOn.LOOP and (not (state.presence or state.safety) or state.loop_gap)


def _armed(config: LaneSettings, event: Event) -> bool:
    return isinstance(event, PresenceOn if config.arm_on is ArmOn.LOOP else Motion)


# ---- transitions --------------------------------------------------------------------------------
def _new_pass(config: LaneSettings, state: LaneState, now_ms: int) -> LaneState:
    """The next pass, with nothing of the last one kept (its read, decision, evidence, operator)."""
    return replace(state, pass_no=state.pass_no + 1, started_ms=now_ms, read=None, snapshot=None,
                   decision=None, manual_by="", retries_left=config.burst_retries,
                   safety_seen=state.safety, crossed=False, late_ack_ms=None, read_from=None,
                   loop_gap=False)


def _begin_pass(config: LaneSettings, state: LaneState, now_ms: int) -> Step:
    return _start_burst(config, _new_pass(config, state, now_ms), now_ms)


def _start_burst(config: LaneSettings, state: LaneState, now_ms: int) -> Step:
    burst_no = state.burst_no + 1
    state = replace(state, phase=Phase.CAPTURING, burst_no=burst_no,
                    deadline_ms=now_ms + config.burst_timeout_ms)
    return state, [StartBurst(burst_no, config.burst_frames)]


def _open(config: LaneSettings, state: LaneState, decision: Decision, now_ms: int) -> Step:
    state = replace(state, phase=Phase.OPENING, decision=decision, opened_ms=now_ms,
                    deadline_ms=now_ms + config.ack_timeout_ms)
    return state, [OpenPulse(config.open_pulse_ms)]


def _manual_open(config: LaneSettings, state: LaneState, event: ManualOpen, now_ms: int) -> Step:
    """An operator opens the gate: a pass of its own when none is running, else this pass's open."""
    if state.phase in (Phase.IDLE, Phase.WAIT_LEAVE):
        state = _new_pass(config, state, now_ms)
    state = replace(state, manual_by=event.operator)
    return _open(config, state, Decision(True, Reason.MANUAL_OPEN, None), now_ms)


def _record(config: LaneSettings, state: LaneState, outcome: Outcome, now_ms: int,
            detail: str = "") -> Record:
    manual = f"manual open by {state.manual_by}" if state.manual_by else ""
    late = f"gate opened late: ack after {state.late_ack_ms} ms" if state.late_ack_ms is not None else ""
    detail = "; ".join(filter(None, (manual, late, detail)))
    return Record(PassRecord(config.lane_id, config.direction, state.pass_no, outcome, state.started_ms,
                            now_ms, state.read, state.decision, detail, state.snapshot, state.late_ack_ms,
                            state.read_from))


def _end_refused(config: LaneSettings, state: LaneState, outcome: Outcome, now_ms: int,
                 detail: str = "") -> Step:
    """The pass ends without opening; wait for the vehicle to leave (or retry later)."""
    record = _record(config, state, outcome, now_ms, detail)
    return replace(state, phase=Phase.WAIT_LEAVE, deadline_ms=now_ms + config.retry_after_ms), [record]


def _finish_opened(config: LaneSettings, state: LaneState, outcome: Outcome, now_ms: int,
                   detail: str = "") -> Step:
    """The pass of an opened gate ends: record it, then close as soon as the safety loop is free."""
    commands: list[Command] = [_record(config, state, outcome, now_ms, detail)]
    state = replace(state, passed=outcome is Outcome.PASSED)
    if outcome is Outcome.PASSED and state.read is not None:
        state = replace(state, last_opened_plate=state.read.text, last_opened_ms=now_ms)
    if state.safety:
        return replace(state, phase=Phase.CLOSING, deadline_ms=now_ms + config.stuck_alert_ms), commands
    state, more = _closed(config, state, now_ms)
    return state, commands + more


def _closed(config: LaneSettings, state: LaneState, now_ms: int) -> Step:
    """Close. A vehicle on the presence loop after a passage is the next one: read it at once. After
    a fault or no passage it is likely the same vehicle: read it again only after ``retry_after_ms``
    (no rapid open/fault loop)."""
    idle = replace(state, phase=Phase.IDLE, deadline_ms=None)
    if config.arm_on is ArmOn.LOOP and state.presence:
        if not state.passed:
            waiting = replace(state, phase=Phase.WAIT_LEAVE, deadline_ms=now_ms + config.retry_after_ms)
            return waiting, [Close()]
        idle, commands = _begin_pass(config, idle, now_ms)
        return idle, [Close(), *commands]
    return idle, [Close()]


def _idle(config: LaneSettings, state: LaneState, event: Event, now_ms: int) -> Step:
    if _armed(config, event):
        return _begin_pass(config, state, now_ms)
    if isinstance(event, ManualOpen):
        return _manual_open(config, state, event, now_ms)
    return state, []


def _capturing(config: LaneSettings, state: LaneState, event: Event, now_ms: int) -> Step:
    match event:
        case BurstDone(burst_no=n) if n == state.burst_no:
            return _burst_done(config, state, event, now_ms)
        case Timeout():
            alert = Alert("camera_timeout", f"lane {config.lane_id}: burst {state.burst_no} did not finish")
            next_state, commands = _no_consensus(config, state, now_ms)
            return next_state, [alert, *commands]
        case ManualOpen():
            return _manual_open(config, state, event, now_ms)
    return state, []


def _abandon(config: LaneSettings, state: LaneState, now_ms: int) -> Step:
    """The vehicle left while it was read: the pass ends undecided. A vehicle on the loop again after a
    gap may be another one: it gets a pass of its own, read afresh."""
    detail = "presence loop free during the pass; read again" if state.presence else ""
    record = _record(config, state, Outcome.ABANDONED, now_ms, detail)
    idle = replace(state, phase=Phase.IDLE, deadline_ms=None)
    if not state.presence:
        return idle, [record]
    idle, commands = _begin_pass(config, idle, now_ms)
    return idle, [record, *commands]


def _burst_done(config: LaneSettings, state: LaneState, burst: BurstDone, now_ms: int) -> Step:
    if _vehicle_gone(config, state):
        return _abandon(config, state, now_ms)
    state = replace(state, read_from=burst.read_from)
    read = consensus(burst.reads, config.min_votes)
    if read is None or not read.text:
        return _no_consensus(config, state, now_ms)
    state = replace(state, read=read, snapshot=burst.snapshot)
    recent = now_ms - state.last_opened_ms < config.debounce_ms
    if recent and read.text == state.last_opened_plate:
        return _end_refused(config, state, Outcome.DEBOUNCED, now_ms, "same plate just passed")
    state = replace(state, phase=Phase.DECIDING, deadline_ms=now_ms + config.decide_timeout_ms)
    return state, [Decide(state.pass_no, read)]


def _no_consensus(config: LaneSettings, state: LaneState, now_ms: int) -> Step:
    if state.retries_left > 0:
        return _start_burst(config, replace(state, retries_left=state.retries_left - 1), now_ms)
    if config.decides_unread:  # an exit that lets everyone out: "no read" is decided (and allowed) too
        unread = PlateRead("", 0.0)
        deadline = now_ms + config.decide_timeout_ms
        state = replace(state, read=unread, phase=Phase.DECIDING, deadline_ms=deadline)
        return state, [Decide(state.pass_no, unread)]
    return _end_refused(config, state, Outcome.NO_READ, now_ms)


def _deciding(config: LaneSettings, state: LaneState, event: Event, now_ms: int) -> Step:
    match event:
        case Decided(pass_no=n, decision=decision) if n == state.pass_no:
            if decision.allow:
                return _open(config, state, decision, now_ms)
            return _end_refused(config, replace(state, decision=decision), Outcome.DENIED, now_ms)
        case Timeout():
            state, commands = _end_refused(config, state, Outcome.DECIDE_TIMEOUT, now_ms)
            return state, [Alert("decide_timeout", f"lane {config.lane_id}: no decision"), *commands]
        case ManualOpen():
            return _manual_open(config, state, event, now_ms)
    return state, []


def _opening(config: LaneSettings, state: LaneState, event: Event, now_ms: int) -> Step:
    match event:
        case GateAck():
            waited = now_ms - state.opened_ms
            late = waited if waited > config.late_ack_ms else None
            state = replace(state, phase=Phase.PASSING, deadline_ms=now_ms + config.passage_timeout_ms,
                            late_ack_ms=late)
            if state.crossed:  # the gate opened and the vehicle drove through before the ack came
                return _finish_opened(config, state, Outcome.PASSED, now_ms)
            return state, []
        case SafetyOff() if state.safety_seen:
            return replace(state, crossed=True), []
        case GateFault(detail=detail):
            return _gate_fault(config, state, detail, now_ms)
        case Timeout() if state.crossed:
            # No ack, but the vehicle crossed under the barrier: it is inside (or out), whatever the
            # controller said. Recorded as the passage it was, and alerted as a gate fault.
            detail = "no acknowledgement of the open pulse, but the vehicle crossed"
            next_state, commands = _finish_opened(config, state, Outcome.PASSED, now_ms, detail)
            return next_state, [Alert("gate_fault", f"lane {config.lane_id}: {detail}"), *commands]
        case Timeout():
            return _gate_fault(config, state, "no acknowledgement of the open pulse", now_ms)
    return state, []


def _gate_fault(config: LaneSettings, state: LaneState, detail: str, now_ms: int) -> Step:
    next_state, commands = _finish_opened(config, state, Outcome.GATE_FAULT, now_ms, detail)
    return next_state, [Alert("gate_fault", f"lane {config.lane_id}: {detail}"), *commands]


def _passing(config: LaneSettings, state: LaneState, event: Event, now_ms: int) -> Step:
    match event:
        case SafetyOff() if state.safety_seen:
            return _finish_opened(config, state, Outcome.PASSED, now_ms)
        case SafetyOff():
            # Never seen occupied in this pass: one frame (forged, or noise with a valid CRC) does not
            # prove a passage. A lost SafetyOn of a real car: the status poll sees an occupied loop
            # (edge.daemon.lane reconciles), else the pass ends as no_passage at its timeout.
            return state, [Alert("implausible_safety_clear", f"lane {config.lane_id}: safety loop reported "
                                 f"clear in pass {state.pass_no} without having been occupied; ignored")]
        case Timeout():
            if state.safety:
                alert = Alert("vehicle_stuck", f"lane {config.lane_id}: safety loop occupied too long")
                return replace(state, deadline_ms=now_ms + config.stuck_alert_ms), [alert]
            return _finish_opened(config, state, Outcome.NO_PASSAGE, now_ms)
    return state, []


def _closing(config: LaneSettings, state: LaneState, event: Event, now_ms: int) -> Step:
    match event:
        case SafetyOff():
            return _closed(config, state, now_ms)
        case Timeout():
            alert = Alert("vehicle_stuck", f"lane {config.lane_id}: safety loop occupied, gate held open")
            return replace(state, deadline_ms=now_ms + config.stuck_alert_ms), [alert]
    return state, []


def _wait_leave(config: LaneSettings, state: LaneState, event: Event, now_ms: int) -> Step:
    match event:
        case PresenceOff() if config.arm_on is ArmOn.LOOP:
            return replace(state, phase=Phase.IDLE, deadline_ms=None), []
        case ManualOpen():
            return _manual_open(config, state, event, now_ms)
        case Timeout():
            idle = replace(state, phase=Phase.IDLE, deadline_ms=None)
            if config.arm_on is ArmOn.LOOP and state.presence:
                return _begin_pass(config, idle, now_ms)
            return idle, []
    return state, []


_HANDLERS = {
    Phase.IDLE: _idle,
    Phase.CAPTURING: _capturing,
    Phase.DECIDING: _deciding,
    Phase.OPENING: _opening,
    Phase.PASSING: _passing,
    Phase.CLOSING: _closing,
    Phase.WAIT_LEAVE: _wait_leave,
}
