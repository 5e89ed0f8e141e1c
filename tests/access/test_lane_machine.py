"""The lane state machine: scripted passes and a property test over random event sequences."""

import inspect
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.access.types import Decision, Direction, Reason
from edge.config import LaneConfig, parse_config
from edge.lanes.machine import (
    Alert,
    ArmOn,
    BurstDone,
    Close,
    Decide,
    Decided,
    GateAck,
    GateFault,
    LaneSettings,
    LaneState,
    ManualOpen,
    Motion,
    OpenPulse,
    Outcome,
    Phase,
    PresenceOff,
    PresenceOn,
    Record,
    SafetyOff,
    SafetyOn,
    Snapshot,
    StartBurst,
    Timeout,
    step,
)
from edge.vision.types import PlateRead
from firmware_bridge.client import GateClient

CFG = LaneSettings(LaneConfig(name="entry-1", direction="entry"))
TRIGGER = {ArmOn.LOOP: "presence_loop", ArmOn.MOTION: "motion"}


def armed_on(arm: ArmOn) -> LaneSettings:
    """CFG armed by the presence loop or by camera motion."""
    return replace(CFG, lane=CFG.lane.model_copy(update={"trigger": TRIGGER[arm]}))
ALLOW = Decision(True, Reason.BOOKING_VALID, None, "b1")
DENY = Decision(False, Reason.NO_BOOKING, None)


def reads(text: str, n: int = 3, conf: float = 0.9) -> tuple[PlateRead, ...]:
    """n frames of a burst, each reading ``text`` (as vision reports it: normalised, per-char conf)."""
    return tuple(PlateRead(text, conf, (conf,) * len(text)) for _ in range(n))


def burst(no: int, frames: tuple[PlateRead, ...]) -> BurstDone:
    return BurstDone(no, frames, Snapshot("/var/lib/parkgate/snapshots/1.jpg", "ab" * 32))


class Lane:
    """Drives the machine like the daemon would, collecting commands."""

    def __init__(self, config: LaneSettings = CFG) -> None:
        self.config, self.state, self.now, self.log = config, LaneState(), 1_000, []

    def __call__(self, event, dt: int = 10) -> list:
        self.now += dt
        self.state, commands = step(self.config, self.state, event, self.now)
        self.log.extend(commands)
        return commands

    def records(self) -> list:
        return [c.event for c in self.log if isinstance(c, Record)]


def test_happy_path() -> None:
    lane = Lane()
    assert lane(PresenceOn()) == [StartBurst(1, 5)]
    [decide] = lane(burst(1, reads("AB123CD") + reads("AB123C0", 1)))
    assert isinstance(decide, Decide) and decide.read.text == "AB123CD" and decide.pass_no == 1
    assert lane.state.snapshot == Snapshot("/var/lib/parkgate/snapshots/1.jpg", "ab" * 32)
    assert lane(Decided(1, ALLOW)) == [OpenPulse(500)]
    assert lane(GateAck(1)) == []
    assert lane(PresenceOff()) == [] and lane(SafetyOn()) == []
    record, close = lane(SafetyOff())
    assert close == Close() and lane.state.phase is Phase.IDLE
    event = record.event
    assert (event.outcome, event.pass_no, event.decision) == (Outcome.PASSED, 1, ALLOW)
    assert event.read.text == "AB123CD"
    assert event.snapshot == Snapshot("/var/lib/parkgate/snapshots/1.jpg", "ab" * 32)
    assert event.started_ms < event.ended_ms


def opened_lane() -> Lane:
    """A lane whose gate opened for pass 1 (waiting for the vehicle to cross)."""
    lane = Lane()
    lane(PresenceOn())
    lane(burst(1, reads("AB123CD")))
    lane(Decided(1, ALLOW))
    lane(GateAck(1))
    return lane


def test_a_lone_safety_clear_is_not_a_passage() -> None:
    """One forged (or stray) "safety loop clear" frame, the loop never seen occupied: no check-in; the
    pass goes on waiting and the real crossing that follows is the one recorded."""
    lane = opened_lane()
    [alert] = lane(SafetyOff())
    assert isinstance(alert, Alert) and alert.code == "implausible_safety_clear"
    assert lane.state.phase is Phase.PASSING and not lane.records()
    lane(SafetyOn())
    lane(PresenceOff())
    record, close = lane(SafetyOff())
    assert record.event.outcome is Outcome.PASSED and close == Close()


def test_a_forged_safety_clear_alone_ends_as_no_passage() -> None:
    """The car never moved: the forged frame is ignored and the pass times out as no_passage."""
    lane = opened_lane()
    lane(SafetyOff())
    [record, close] = lane(Timeout(), dt=CFG.passage_timeout_ms)
    assert record.event.outcome is Outcome.NO_PASSAGE and close == Close()


def test_a_vehicle_already_on_the_safety_loop_when_the_pass_began_counts() -> None:
    lane = Lane()
    lane(SafetyOn())
    lane(PresenceOn())
    lane(burst(1, reads("AB123CD")))
    lane(Decided(1, ALLOW))
    lane(GateAck(1))
    lane(PresenceOff())
    record, close = lane(SafetyOff())
    assert record.event.outcome is Outcome.PASSED and close == Close()


def test_the_safety_loop_of_the_previous_pass_does_not_count_for_the_next() -> None:
    lane = opened_lane()
    lane(SafetyOn())
    lane(SafetyOff())  # pass 1 crossed
    lane(PresenceOn())  # the next car
    lane(burst(2, reads("XY98765")))
    lane(Decided(2, ALLOW))
    lane(GateAck(2))
    [alert] = lane(SafetyOff())
    assert alert.code == "implausible_safety_clear" and lane.state.phase is Phase.PASSING


def test_a_late_ack_in_time_is_recorded_as_an_open_that_came_late() -> None:
    """A controller answering 1.5 s late: the pass is credited and its record says so (not a fault)."""
    lane = Lane()
    lane(PresenceOn())
    lane(burst(1, reads("AB123CD")))
    lane(Decided(1, ALLOW))
    assert lane(GateAck(1), dt=1_500) == [] and lane.state.phase is Phase.PASSING
    lane(SafetyOn())
    lane(PresenceOff())
    record, _ = lane(SafetyOff())
    assert record.event.outcome is Outcome.PASSED
    assert record.event.detail == "gate opened late: ack after 1500 ms" and record.event.late_ack_ms == 1500


def test_a_vehicle_through_before_the_late_ack_is_a_passage() -> None:
    """The controller opened at once but answered late: the car crossed while the lane still waited
    for the ack; the ack then completes the pass (no 60 s wait for a crossing already seen)."""
    lane = Lane()
    lane(PresenceOn())
    lane(burst(1, reads("AB123CD")))
    lane(Decided(1, ALLOW))
    for event in (SafetyOn(), PresenceOff(), SafetyOff()):
        assert lane(event) == [] and lane.state.phase is Phase.OPENING
    record, close = lane(GateAck(1), dt=1_500)
    assert record.event.outcome is Outcome.PASSED and record.event.late_ack_ms == 1_530
    assert close == Close() and lane.state.phase is Phase.IDLE


def test_a_vehicle_through_without_any_ack_is_a_passage_and_a_gate_fault_alert() -> None:
    """The ack never comes but the car crossed under the barrier: it is inside, so the pass is the
    passage it was (no trapped car at the exit), and the missing ack is alerted."""
    lane = Lane()
    lane(PresenceOn())
    lane(burst(1, reads("AB123CD")))
    lane(Decided(1, ALLOW))
    for event in (SafetyOn(), PresenceOff(), SafetyOff()):
        lane(event)
    alert, record, close = lane(Timeout(), dt=CFG.ack_timeout_ms)
    assert alert.code == "gate_fault" and record.event.outcome is Outcome.PASSED
    assert "vehicle crossed" in record.event.detail and close == Close()


def test_a_prompt_ack_leaves_no_note() -> None:
    lane = opened_lane()
    lane(SafetyOn())
    lane(PresenceOff())
    record, _ = lane(SafetyOff())
    assert record.event.detail == ""


def test_deadlines_are_durations_of_the_machine_clock() -> None:
    """Every deadline is now + a duration of the clock the machine is given (monotonic in the daemon):
    the phase timeouts do not depend on what time of day it is."""
    for start in (1_000, 10**15):
        lane = Lane()
        lane.now = start
        lane(PresenceOn())
        assert lane.state.deadline_ms == lane.now + CFG.burst_timeout_ms
        lane(burst(1, reads("AB123CD")))
        lane(Decided(1, ALLOW))
        assert lane.state.deadline_ms == lane.now + CFG.ack_timeout_ms
        lane(GateAck(1))
        assert lane.state.deadline_ms == lane.now + CFG.passage_timeout_ms


def test_denied_vehicle_waits_then_leaves() -> None:
    lane = Lane()
    lane(PresenceOn())
    lane(burst(1, reads("XY1")))
    [record] = lane(Decided(1, DENY))
    assert record.event.outcome is Outcome.DENIED and record.event.decision == DENY
    assert lane.state.phase is Phase.WAIT_LEAVE
    lane(PresenceOff())
    assert lane.state.phase is Phase.IDLE and not any(isinstance(c, OpenPulse) for c in lane.log)


def test_vehicle_still_waiting_is_read_again_later() -> None:
    lane = Lane()
    lane(PresenceOn())
    lane(burst(1, reads("XY1")))
    lane(Decided(1, DENY))
    assert lane(Timeout(), dt=CFG.retry_after_ms) == [StartBurst(2, 5)]
    assert lane.state.pass_no == 2


def test_no_consensus_retries_then_records_no_read() -> None:
    lane = Lane()
    lane(PresenceOn())
    assert lane(burst(1, reads("AB1", 1))) == [StartBurst(2, 5)]  # one frame, two votes needed
    [record] = lane(burst(2, ()))
    assert record.event.outcome is Outcome.NO_READ


def test_open_exit_decides_a_pass_without_a_read() -> None:
    """exit_policy = "open": a car whose plate cannot be read is decided (and so let out), not refused."""
    lane = Lane(LaneSettings(LaneConfig(name="exit-1", direction="exit", exit_policy="open")))
    lane(PresenceOn())
    lane(burst(1, ()))
    [decide] = lane(burst(2, ()))
    assert isinstance(decide, Decide) and decide.read.text == "" and lane.state.phase is Phase.DECIDING
    assert not Lane(LaneSettings(LaneConfig(name="exit-1", direction="exit"))).config.decides_unread


def test_camera_timeout_alerts_and_retries_and_stale_burst_is_ignored() -> None:
    lane = Lane()
    lane(PresenceOn())
    assert lane(Timeout(), dt=1) == []  # early timer: ignored
    alert, start = lane(Timeout(), dt=CFG.burst_timeout_ms)
    assert isinstance(alert, Alert) and alert.code == "camera_timeout" and start == StartBurst(2, 5)
    assert lane(burst(1, reads("AB1"))) == []
    assert isinstance(lane(burst(2, reads("AB1")))[0], Decide)


def test_vehicle_that_reverses_away_is_abandoned() -> None:
    lane = Lane()
    lane(PresenceOn())
    lane(PresenceOff())
    [record] = lane(burst(1, reads("AB1")))
    assert record.event.outcome is Outcome.ABANDONED and lane.state.phase is Phase.IDLE


def test_loop_flicker_during_burst_is_debounced() -> None:
    lane = Lane()
    lane(PresenceOn())
    lane(PresenceOff())
    assert lane(PresenceOn()) == []
    assert isinstance(lane(burst(1, reads("AB1")))[0], Decide)


def _pass(lane: Lane, plate: str, pass_no: int) -> None:
    lane(PresenceOn())
    lane(burst(lane.state.burst_no, reads(plate)))
    lane(Decided(pass_no, ALLOW))
    lane(GateAck(pass_no))
    lane(PresenceOff())
    lane(SafetyOn())
    lane(SafetyOff())


def test_same_plate_again_right_after_passing_is_debounced() -> None:
    lane = Lane()
    _pass(lane, "AB1", 1)
    lane(PresenceOn())
    [record] = lane(burst(2, reads("AB1")))
    assert record.event.outcome is Outcome.DEBOUNCED
    lane(PresenceOff())
    lane(PresenceOn(), dt=CFG.debounce_ms)
    assert isinstance(lane(burst(3, reads("AB1")))[0], Decide)


def test_never_closes_on_a_vehicle_under_the_gate() -> None:
    lane = Lane()
    lane(PresenceOn())
    lane(burst(1, reads("AB1")))
    lane(Decided(1, ALLOW))
    lane(GateAck(1))
    lane(SafetyOn())
    lane(PresenceOff())
    [alert] = lane(Timeout(), dt=CFG.passage_timeout_ms)
    assert alert.code == "vehicle_stuck"
    record, close = lane(SafetyOff())
    assert record.event.outcome is Outcome.PASSED and close == Close()


def test_no_passage_closes_after_timeout() -> None:
    lane = Lane()
    lane(PresenceOn())
    lane(burst(1, reads("AB1")))
    lane(Decided(1, ALLOW))
    lane(GateAck(1))
    lane(PresenceOff())
    record, close = lane(Timeout(), dt=CFG.passage_timeout_ms)
    assert record.event.outcome is Outcome.NO_PASSAGE and close == Close()


def test_gate_fault_with_vehicle_under_gate_closes_only_when_clear() -> None:
    lane = Lane()
    lane(PresenceOn())
    lane(burst(1, reads("AB1")))
    lane(SafetyOn())
    lane(Decided(1, ALLOW))
    alert, record = lane(GateFault(1, "motor overcurrent"))
    assert alert.code == "gate_fault" and record.event.outcome is Outcome.GATE_FAULT
    assert record.event.detail == "motor overcurrent" and lane.state.phase is Phase.CLOSING
    lane(PresenceOff())
    assert lane(SafetyOff()) == [Close()]


def test_missing_ack_is_a_fault() -> None:
    lane = Lane()
    lane(PresenceOn())
    lane(burst(1, reads("AB1")))
    lane(Decided(1, ALLOW))
    alert, record, close = lane(Timeout(), dt=CFG.ack_timeout_ms)
    assert record.event.outcome is Outcome.GATE_FAULT and close == Close()
    assert lane.state.phase is Phase.WAIT_LEAVE  # same vehicle still there: no immediate re-open
    assert lane(Timeout(), dt=CFG.retry_after_ms) == [StartBurst(2, 5)]


def test_next_vehicle_waiting_is_read_right_after_close() -> None:
    lane = Lane()
    lane(PresenceOn())
    lane(burst(1, reads("AB1")))
    lane(Decided(1, ALLOW))
    lane(GateAck(1))
    lane(SafetyOn())
    record, close, start = lane(SafetyOff())  # presence loop still occupied: a second vehicle
    assert (record.event.pass_no, close, start) == (1, Close(), StartBurst(2, 5))
    assert lane.state.pass_no == 2


def test_manual_open_is_its_own_pass_and_recorded() -> None:
    lane = Lane()
    assert lane(ManualOpen("desk")) == [OpenPulse(500)]
    assert lane(ManualOpen("desk")) == []  # already opening: never a second pulse
    lane(GateAck(1))
    lane(SafetyOn())
    lane(PresenceOff())
    record, _ = lane(SafetyOff())
    assert record.event.decision.reason is Reason.MANUAL_OPEN and record.event.detail == "manual open by desk"


def test_manual_open_after_a_refused_car_keeps_nothing_of_its_pass() -> None:
    """The operator's pass is recorded without the refused car's read or evidence photo."""
    lane = Lane()
    lane(PresenceOn())
    lane(burst(1, reads("AB1")))
    refused, *_ = lane(Decided(1, DENY))
    assert refused.event.snapshot is not None
    lane(PresenceOff())
    lane(ManualOpen("alice"))
    lane(GateAck(2))
    lane(SafetyOn())
    record, _ = lane(SafetyOff())
    assert (record.event.pass_no, record.event.read, record.event.snapshot) == (2, None, None)
    assert record.event.detail == "manual open by alice"


def test_motion_arming() -> None:
    lane = Lane(armed_on(ArmOn.MOTION))
    assert lane(PresenceOn()) == []
    assert lane(Motion()) == [StartBurst(1, 5)]
    assert isinstance(lane(burst(1, reads("AB1")))[0], Decide)  # no presence loop needed


def _ack_timed_out() -> Lane:
    """Pass 1 was allowed and opened, and its ack timed out (recorded as a gate fault)."""
    lane = Lane()
    lane(PresenceOn())
    lane(burst(1, reads("AB1")))
    lane(Decided(1, ALLOW))
    lane(Timeout(), dt=CFG.ack_timeout_ms)
    return lane


def _opening_after_a_given_up_pass() -> Lane:
    """Pass 1's ack timed out (gate fault); the vehicle was read again and pass 2 is now OPENING."""
    lane = _ack_timed_out()
    lane(Timeout(), dt=CFG.retry_after_ms)
    lane(burst(2, reads("AB1")))
    assert lane(Decided(2, ALLOW)) == [OpenPulse(500)]
    assert (lane.state.phase, lane.state.pass_no) == (Phase.OPENING, 2)
    return lane


def test_late_ack_of_a_given_up_pass_is_not_credited_to_the_next_pass() -> None:
    lane = _opening_after_a_given_up_pass()
    before = lane.state
    [alert] = lane(GateAck(1))
    assert lane.state == before, "a stale ack must not change the state"
    assert alert.code == "late_gate_ack" and "entry-1" in alert.detail and "pass 1" in alert.detail
    assert [r.outcome for r in lane.records()] == [Outcome.GATE_FAULT]
    assert lane(GateAck(2)) == [] and lane.state.phase is Phase.PASSING  # its own ack still opens it


def test_late_fault_of_a_given_up_pass_does_not_fault_the_next_pass() -> None:
    lane = _opening_after_a_given_up_pass()
    before = lane.state
    [alert] = lane(GateFault(1, "no reply after 4 attempts"))
    assert lane.state == before, "a stale fault must not change the state"
    assert alert.code == "late_gate_fault" and "pass 1" in alert.detail and "4 attempts" in alert.detail
    assert [r.outcome for r in lane.records()] == [Outcome.GATE_FAULT]


def test_ack_after_the_ack_timeout_alerts_while_the_same_vehicle_waits() -> None:
    """Same pass number, but no longer OPENING: the gate opened for a pass recorded as a fault."""
    lane = _ack_timed_out()
    before = lane.state
    [alert] = lane(GateAck(1))
    assert alert.code == "late_gate_ack" and lane.state == before and before.phase is Phase.WAIT_LEAVE


def test_matching_fault_ends_its_own_pass() -> None:
    lane = _opening_after_a_given_up_pass()
    alert, record, _close = lane(GateFault(2, "motor overcurrent"))
    assert alert.code == "gate_fault"
    assert (record.event.pass_no, record.event.outcome) == (2, Outcome.GATE_FAULT)


def test_default_ack_timeout_outlasts_the_serial_clients_worst_case() -> None:
    """The open's own retries plus a status poll and a heartbeat ahead of it on the client's lock
    (each attempt: up to ``timeout_s`` waiting for a reconnect, then ``timeout_s`` for the reply)."""
    defaults = inspect.signature(GateClient.__init__).parameters
    timeout_s, retries = defaults["timeout_s"].default, defaults["retries"].default
    attempt_ms = 2 * timeout_s * 1000
    open_and_status_poll, heartbeat = 2 * (1 + retries) * attempt_ms, attempt_ms
    assert LaneSettings().ack_timeout_ms > open_and_status_poll + heartbeat


# ---- property test ------------------------------------------------------------------------------
PLATES = ("AB1", "AB1", "XY9", "")
simple = st.sampled_from([PresenceOn(), PresenceOff(), SafetyOn(), SafetyOff(), Motion(), ManualOpen("op"),
                          Timeout()])
symbolic = st.one_of(
    st.tuples(st.just("burst"), st.booleans(), st.lists(st.sampled_from(PLATES), max_size=4)),
    st.tuples(st.just("decided"), st.booleans(), st.booleans()),
    st.tuples(st.sampled_from(["ack", "fault"]), st.booleans(), st.none()),
)
events = st.lists(st.tuples(st.one_of(simple, symbolic), st.integers(0, 70_000)), max_size=60)


def resolve(item, state: LaneState):
    """Turn a symbolic event into one that matches (or deliberately misses) the current burst/pass."""
    if not isinstance(item, tuple):
        return item
    kind, current, payload = item
    if kind == "burst":
        return BurstDone(state.burst_no if current else state.burst_no - 1,
                         tuple(PlateRead(p, 0.9, (0.9,) * len(p)) for p in payload))
    pass_no = state.pass_no if current else state.pass_no - 1
    if kind == "ack":
        return GateAck(pass_no)
    if kind == "fault":
        return GateFault(pass_no, "f")
    return Decided(pass_no, ALLOW if payload else DENY)


def answers_current_open(event, state: LaneState) -> bool:
    return state.phase is Phase.OPENING and event.pass_no == state.pass_no


DRAIN = [SafetyOff(), PresenceOff(), ("ack", True, None)] + [Timeout()] * 12


@settings(max_examples=400, deadline=None)
@given(script=events, arm=st.sampled_from(ArmOn))
def test_invariants_over_random_event_sequences(script, arm: ArmOn) -> None:
    config = armed_on(arm)
    state, now, safety = LaneState(), 0, False
    opens_in_pass, gate_opened, recorded = 0, False, []
    for item, dt in [*script, *((e, 1_000_000) for e in DRAIN)]:
        event = resolve(item, state)
        now += dt
        safety = {SafetyOn: True, SafetyOff: False}.get(type(event), safety)
        before = state
        state, commands = step(config, state, event, now)
        if isinstance(event, GateFault):
            assert any(isinstance(c, Alert) for c in commands), "gate fault without an alert"
        if isinstance(event, GateAck | GateFault) and not answers_current_open(event, before):
            assert state == before and len(commands) == 1 and isinstance(commands[0], Alert), \
                "a gate answer for a pass not waiting for it changed the lane"
        for command in commands:
            if isinstance(command, OpenPulse):
                opens_in_pass += 1
                gate_opened = True
                assert opens_in_pass == 1, "two opens in one vehicle pass"
            elif isinstance(command, Close):
                assert not safety, "close while the safety loop is occupied"
                gate_opened = False
            elif isinstance(command, Record):
                recorded.append(command.event.pass_no)
                opens_in_pass = 0
    assert state.phase is Phase.IDLE
    assert recorded == list(range(1, state.pass_no + 1)), "every pass ends in exactly one Record"
    assert not gate_opened, "gate left open"


def test_lane_config_from_validated_config() -> None:
    cfg = parse_config('[[lanes]]\nname = "exit-2"\ndirection = "exit"\ntrigger = "motion"\n'
                       '[lanes.camera]\nburst_frames = 1\n[lanes.gate]\npulse_ms = 800\n')
    lane = LaneSettings(cfg.lanes[0])
    assert (lane.lane_id, lane.direction, lane.arm_on) == ("exit-2", Direction.EXIT, ArmOn.MOTION)
    assert (lane.burst_frames, lane.min_votes, lane.open_pulse_ms) == (1, 1, 800)


def test_vehicle_replaced_on_the_loop_during_the_burst_is_read_again() -> None:
    """Car A triggers and backs away during a slow read; car B drives onto the loop before the burst
    ends. The burst's frames show A: deciding on them could let B in on A's booking."""
    lane = Lane()
    lane(PresenceOn())
    lane(PresenceOff())
    assert lane(PresenceOn(), dt=CFG.loop_gap_ms + 1) == []
    record, start = lane(burst(1, reads("AB1")))
    assert record.event.outcome is Outcome.ABANDONED and record.event.pass_no == 1
    assert start == StartBurst(2, 5) and lane.state.pass_no == 2 and lane.state.phase is Phase.CAPTURING
    assert isinstance(lane(burst(2, reads("XY9")))[0], Decide)


def test_vehicle_that_crept_onto_the_safety_loop_during_the_burst_is_decided() -> None:
    """A car noses up to the barrier while it is read: off the presence loop, onto the safety loop. It is
    still there; abandoning its pass would leave it at a shut gate (at an exit, trapped inside)."""
    lane = Lane(replace(CFG, lane=CFG.lane.model_copy(update={"direction": "exit"})))
    lane(PresenceOn())
    lane(SafetyOn())
    lane(PresenceOff())
    [decide] = lane(burst(1, reads("AB1")))
    assert isinstance(decide, Decide)
    assert lane(Decided(1, ALLOW)) == [OpenPulse(CFG.open_pulse_ms)]
