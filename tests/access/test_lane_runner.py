"""The lane runner: commands reach the ports, decisions loop back, port failures never escape."""

from dataclasses import dataclass, field

from edge.access.types import Decision, Direction, PlateRead, Reason
from edge.lanes.machine import (
    BurstDone,
    GateAck,
    GateEvent,
    LaneConfig,
    Outcome,
    Phase,
    PresenceOff,
    PresenceOn,
    SafetyOff,
    SafetyOn,
)
from edge.lanes.runner import LaneRunner
from edge.vision.reader import PlateRead as VisionRead

CFG = LaneConfig("entry-1", Direction.ENTRY)


@dataclass
class Ports:
    """In-memory ports that log calls; ``fail`` names the calls that raise."""

    allow: bool = True
    fail: set[str] = field(default_factory=set)
    calls: list[tuple] = field(default_factory=list)
    records: list[GateEvent] = field(default_factory=list)

    def _call(self, name: str, *args: object) -> None:
        self.calls.append((name, *args))
        if name in self.fail:
            raise OSError(f"{name} broke")

    def start_burst(self, burst_no: int, frames: int) -> None:
        self._call("start_burst", burst_no, frames)

    def decide(self, pass_no: int, read: PlateRead) -> Decision:
        self._call("decide", pass_no, read.text)
        return Decision(self.allow, Reason.BOOKING_VALID if self.allow else Reason.NO_BOOKING, None)

    def open_pulse(self, ms: int) -> None:
        self._call("open_pulse", ms)

    def close(self) -> None:
        self._call("close")

    def record(self, event: GateEvent) -> None:
        self._call("record", event.outcome)
        self.records.append(event)

    def alert(self, code: str, detail: str) -> None:
        self._call("alert", code)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000

    def __call__(self) -> int:
        return self.now


FRAMES = tuple(VisionRead("AB123CD", 0.9, (0.9,) * 7) for _ in range(3))


def test_a_full_pass_through_the_ports() -> None:
    ports, clock = Ports(), Clock()
    lane = LaneRunner(CFG, ports, clock)
    lane.feed(PresenceOn())
    lane.feed(BurstDone(1, FRAMES, "/snap/1.jpg", "00" * 32))
    for event in (GateAck(), PresenceOff(), SafetyOn(), SafetyOff()):
        lane.feed(event)
    assert [c[0] for c in ports.calls] == ["start_burst", "decide", "open_pulse", "record", "close"]
    assert ports.records[0].outcome is Outcome.PASSED
    assert ports.records[0].read.snapshot_path == "/snap/1.jpg"


def test_tick_fires_due_timeouts_only() -> None:
    ports, clock = Ports(), Clock()
    lane = LaneRunner(CFG, ports, clock)
    lane.feed(PresenceOn())
    lane.tick()
    assert len(ports.calls) == 1
    clock.now += CFG.burst_timeout_ms
    lane.tick()
    assert ports.calls[-2:] == [("alert", "camera_timeout"), ("start_burst", 2, 5)]


def test_failed_open_becomes_a_gate_fault_and_is_recorded() -> None:
    ports, clock = Ports(fail={"open_pulse"}), Clock()
    lane = LaneRunner(CFG, ports, clock)
    lane.feed(PresenceOn())
    lane.feed(BurstDone(1, FRAMES))
    assert ports.records[0].outcome is Outcome.GATE_FAULT and "open_pulse broke" in ports.records[0].detail
    assert ("close",) in ports.calls and ("alert", "gate_fault") in ports.calls


def test_failed_decision_ends_in_a_recorded_timeout() -> None:
    ports, clock = Ports(fail={"decide"}), Clock()
    lane = LaneRunner(CFG, ports, clock)
    lane.feed(PresenceOn())
    lane.feed(BurstDone(1, FRAMES))
    assert ("alert", "port_decide") in ports.calls and lane.state.phase is Phase.DECIDING
    clock.now += CFG.decide_timeout_ms
    lane.tick()
    assert [r.outcome for r in ports.records] == [Outcome.DECIDE_TIMEOUT]
    assert not any(c[0] == "open_pulse" for c in ports.calls)


def test_failing_record_and_alert_ports_do_not_stop_the_lane() -> None:
    ports, clock = Ports(allow=False, fail={"record", "alert"}), Clock()
    lane = LaneRunner(CFG, ports, clock)
    lane.feed(PresenceOn())
    lane.feed(BurstDone(1, FRAMES))
    assert lane.state.phase is Phase.WAIT_LEAVE
    lane.feed(PresenceOff())
    assert lane.state.phase is Phase.IDLE
