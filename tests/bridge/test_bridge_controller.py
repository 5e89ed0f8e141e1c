"""Controller firmware logic and relay-board model as pure state machines (fast, no I/O)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.tools.emulator.controller import Barrier, GateController, handle_frame
from edge.tools.emulator.relayboard import COILS, HOLDING, INPUTS, RelayBoard
from edge.tools.emulator.server import ControllerEmulator, EmulatorConfig, Pty, control_command
from firmware_bridge.framer import Frame
from firmware_bridge.messages import (
    Ack,
    Close,
    Event,
    EventKind,
    Fault,
    Heartbeat,
    HoldOpen,
    OpenPulse,
    Position,
    Release,
    Result,
    Status,
    StatusRequest,
)


def run_until(controller: GateController, start: float, end: float, step: float = 0.01) -> list[Event]:
    events, now = [], start
    while now <= end:
        events += controller.tick(now)
        now += step
    return events


def positions(events: list[Event]) -> list[Position]:
    return [Position(e.value) for e in events if e.kind is EventKind.POSITION]


def test_pulse_opens_then_the_hardware_timer_closes() -> None:
    gate = GateController(barrier=Barrier(open_time_s=0.2, close_time_s=0.2))
    reply, events = gate.handle(1, OpenPulse(500), now=0.0)
    assert reply == Ack(Result.OK) and gate.opens == 1
    events += run_until(gate, 0.0, 1.0)
    assert positions(events) == [Position.OPENING, Position.OPEN, Position.CLOSING, Position.CLOSED]
    assert not gate.output_on(1.0)


def test_held_gate_is_dropped_when_heartbeats_stop() -> None:
    gate = GateController()
    gate.handle(1, HoldOpen(500), now=0.0)
    for i, now in enumerate((0.3, 0.6, 0.9, 1.2)):
        gate.handle(2 + i, Heartbeat(), now)
    gate.tick(1.6)  # 0.4 s after the last heartbeat: still held
    assert gate.held
    events = gate.tick(1.8)
    assert not gate.held and Fault.WATCHDOG in gate.faults
    assert Event(EventKind.WATCHDOG_RELEASE, 0) in events


def test_release_ends_a_hold() -> None:
    gate = GateController()
    gate.handle(1, HoldOpen(1000), now=0.0)
    gate.handle(2, Release(), now=0.1)
    assert not gate.output_on(0.1)


def test_close_is_refused_while_the_safety_loop_is_occupied() -> None:
    gate = GateController()
    gate.handle(1, OpenPulse(5000), now=0.0)
    gate.set_input(EventKind.SAFETY, True, now=0.1)
    reply, _ = gate.handle(2, Close(), now=0.2)
    assert reply == Ack(Result.SAFETY_OCCUPIED) and gate.output_on(0.2)


def test_barrier_stays_open_over_a_vehicle_and_reverses_if_one_arrives_while_closing() -> None:
    gate = GateController(barrier=Barrier(open_time_s=0.1, close_time_s=1.0))
    gate.handle(1, OpenPulse(200), now=0.0)
    gate.set_input(EventKind.SAFETY, True, now=0.05)
    run_until(gate, 0.0, 2.0)
    assert gate.barrier.position is Position.OPEN  # pulse long over, vehicle still underneath
    gate.set_input(EventKind.SAFETY, False, now=2.0)
    run_until(gate, 2.0, 2.3)
    assert gate.barrier.position is Position.CLOSING
    events = gate.set_input(EventKind.SAFETY, True, now=2.3)
    assert positions(events) == [Position.OPENING]


def test_an_open_during_a_running_pulse_counts_as_a_command_not_a_new_opening() -> None:
    """The next car granted while the barrier is still up: one opening, two open commands."""
    gate = GateController()
    gate.handle(1, OpenPulse(3000), now=0.0)
    gate.handle(2, OpenPulse(3000), now=1.0)
    assert (gate.opens, gate.open_commands) == (1, 2) and gate.pulse_until == 4.0
    board = RelayBoard()
    board.write(HOLDING, 0x0200, [30], now=0.0)
    board.write(HOLDING, 0x0200, [30], now=1.0)
    assert (board.gates[0].opens, board.gates[0].open_commands) == (1, 2)


def test_retransmitted_command_is_answered_but_not_executed_twice() -> None:
    gate = GateController()
    first, _ = gate.handle(9, OpenPulse(300), now=0.0)
    gate.handle(9, OpenPulse(300), now=0.05)
    assert gate.duplicates == 1 and gate.opens == 1 and gate.open_commands == 1 and gate.pulse_until == 0.3
    assert first == Ack(Result.OK)


def test_motor_fault_refuses_open() -> None:
    gate = GateController()
    gate.set_fault(Fault.MOTOR, True, now=0.0)
    reply, _ = gate.handle(1, OpenPulse(300), now=0.0)
    assert reply == Ack(Result.FAULT) and gate.opens == 0


def test_status_reports_the_snapshot() -> None:
    gate = GateController()
    gate.set_input(EventKind.PRESENCE, True, now=0.0)
    reply, _ = gate.handle(1, StatusRequest(), now=0.0)
    assert reply == Status(Position.CLOSED, True, False, False, Fault.NONE, 0)


def test_invalid_frames_get_a_reason_and_never_open() -> None:
    gate = GateController()
    assert handle_frame(gate, Frame(1, 0x01, b"\x00\x01"), 0.0)[0] == Ack(Result.BAD_ARGUMENT)
    assert handle_frame(gate, Frame(1, 0x55), 0.0)[0] == Ack(Result.UNSUPPORTED)
    future_version = Frame(1, 0x01, b"\x01\xf4", version=9)
    assert handle_frame(gate, future_version, 0.0)[0] == Ack(Result.VERSION_UNSUPPORTED)
    assert handle_frame(gate, Frame(1, 0x81, b"\x00"), 0.0) == (None, [])
    assert gate.opens == 0


def test_relay_board_flash_on_is_timed_by_the_board() -> None:
    board = RelayBoard()
    assert board.write(HOLDING, 0x0200, [5], now=0.0)  # 5 x 100 ms
    assert board.read(COILS, 0, 1, now=0.4) == [True]
    assert board.read(COILS, 0, 1, now=0.5) == [False]
    assert board.gates[0].opens == 1


def test_relay_board_with_two_gates_keeps_their_relays_inputs_and_counters_apart() -> None:
    board = RelayBoard(gate_count=2)
    board.gates[1].presence = True
    assert board.read(INPUTS, 0, 8, now=0.0) == [False, False, False, True, True, False, False, True]
    assert board.write(HOLDING, 0x0201, [5], now=0.0)  # relay 1: gate 1's
    assert [g.opens for g in board.gates] == [0, 1] and board.read(COILS, 0, 2, now=0.1) == [False, True]
    with pytest.raises(ValueError, match="gates=3: allowed 1..2"):
        RelayBoard(gate_count=3)


def test_relay_board_rejects_addresses_it_does_not_have() -> None:
    board = RelayBoard()
    assert board.read(INPUTS, 6, 4, now=0.0) is None
    assert not board.write(COILS, 8, [True], now=0.0)
    assert not board.write(INPUTS, 0, [True], now=0.0)


@settings(deadline=None, max_examples=200)
@given(st.text(max_size=40))
def test_control_channel_answers_any_line_without_opening(line: str) -> None:
    async def scenario() -> tuple[dict, int]:
        emulator = ControllerEmulator(EmulatorConfig(pace=False), Pty(None))
        emulator.pty.open()
        try:
            reply = await control_command(emulator, line)
        finally:
            emulator.pty.close()
        return reply, emulator.core.opens

    reply, opens = asyncio.run(scenario())
    assert isinstance(reply, dict) and opens == 0
    known = {"state", "presence", "safety", "fault", "corrupt", "drop", "unplug"}
    if not line.split() or line.split()[0].lower() not in known:
        assert "commands: state" in reply["error"]
