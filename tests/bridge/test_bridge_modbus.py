"""ModbusRelayDriver against the relay-board emulator (a pymodbus RTU server), and against a scripted
board that answers out of turn (rtu_board.py), over real ptys."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from bridge_harness import Emulator, running_emulator
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.pdu.bit_message import ReadCoilsResponse, ReadDiscreteInputsResponse, WriteSingleCoilResponse
from pymodbus.pdu.register_message import WriteSingleRegisterResponse
from rtu_board import RtuBoard, rtu_frame, running_board

from firmware_bridge.driver import connect_driver
from firmware_bridge.gate import GateRefused, InputChange
from firmware_bridge.messages import EventKind, Position
from firmware_bridge.modbus import ModbusGateError, ModbusRelayDriver, check_reply
from firmware_bridge.relaymap import RelayMap


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    with running_emulator(tmp_path_factory.mktemp("modbus"), "--modbus", name="relayboard") as emu:
        yield emu


async def connect(board: Emulator) -> ModbusRelayDriver:
    driver = await connect_driver("modbus-rtu", str(board.link), 115200)
    assert isinstance(driver, ModbusRelayDriver)
    return driver


def settle(board: Emulator) -> None:
    board.command("safety 0")
    board.command("presence 0")
    board.wait_for(lambda s: s["position"] == "CLOSED" and not s["output"], timeout=3, what="gate closed")


def test_flash_on_pulse_opens_and_the_board_ends_it(board: Emulator) -> None:
    settle(board)
    opens_before = board.state()["opens"]

    async def scenario() -> None:
        driver = await connect(board)
        await driver.open_pulse(300)
        assert board.state()["output"] is True
        await driver.aclose()

    asyncio.run(scenario())
    state = board.wait_for(lambda s: s["position"] == "CLOSED", timeout=3, what="closed after the pulse")
    assert state["opens"] == opens_before + 1 and state["output"] is False


def test_status_and_polled_events_follow_the_loops(board: Emulator) -> None:
    settle(board)

    async def scenario() -> list:
        driver = await connect(board)
        events = driver.events()
        first = asyncio.ensure_future(anext(events))
        await asyncio.sleep(0.2)
        board.command("presence 1")
        event = await asyncio.wait_for(first, 2)
        status = await driver.status()
        await events.aclose()
        await driver.aclose()
        return [event, status]

    event, status = asyncio.run(scenario())
    assert (event.kind, event.value) == (EventKind.PRESENCE, 1)
    assert status.presence and not status.safety and status.position is Position.CLOSED


def test_close_refused_while_a_vehicle_is_on_the_safety_loop(board: Emulator) -> None:
    settle(board)

    async def scenario() -> None:
        driver = await connect(board)
        await driver.open_pulse(2000)
        board.command("safety 1")
        with pytest.raises(GateRefused, match="safety loop"):
            await driver.close()
        assert board.state()["output"] is True
        board.command("safety 0")
        await driver.close()
        assert board.state()["output"] is False
        await driver.aclose()

    asyncio.run(scenario())


def test_hold_open_is_refreshed_and_lapses_when_the_daemon_stops(board: Emulator) -> None:
    settle(board)

    async def scenario() -> float:
        driver = await connect(board)
        await driver.hold_open(watchdog_ms=400)
        await asyncio.sleep(1.2)
        assert board.state()["output"] is True  # three watchdog periods later, still held
        await driver.aclose()  # stops refreshing without releasing: what a crash looks like to the board
        return time.monotonic()

    stopped = asyncio.run(scenario())
    board.wait_for(lambda s: not s["output"], timeout=2, what="held relay lapses")
    assert time.monotonic() - stopped < 1.0


def test_cable_pull_reconnects_within_two_seconds(board: Emulator) -> None:
    settle(board)

    async def scenario() -> float:
        driver = await connect(board)
        await driver.status()
        board.command("unplug 0.3")
        await asyncio.sleep(0.05)
        t0 = time.monotonic()
        while True:
            try:
                status = await driver.status()
                break
            except ConnectionError:
                assert time.monotonic() - t0 < 5, "no reconnect"
                await asyncio.sleep(0.05)
        elapsed = time.monotonic() - t0
        await driver.aclose()
        assert status.position is Position.CLOSED
        return elapsed

    assert asyncio.run(scenario()) < 2.0
    assert board.state()["plugged"] is True


def test_polled_events_survive_a_cable_pull(board: Emulator) -> None:
    """A lane's event stream must outlive an unanswered poll: the change made while the cable was out
    is reported once the board answers again."""
    settle(board)

    async def scenario():  # noqa: ANN202
        driver = await connect(board)
        events = driver.events()
        first = asyncio.ensure_future(anext(events))
        await asyncio.sleep(0.2)
        board.command("unplug 0.5")
        await asyncio.sleep(0.1)
        board.command("presence 1")
        event = await asyncio.wait_for(first, 5)
        await events.aclose()
        await driver.aclose()
        return event

    event = asyncio.run(scenario())
    assert (event.kind, event.value) == (EventKind.PRESENCE, 1)
    settle(board)


def test_corrupted_and_lost_responses_are_retried_by_the_modbus_client(board: Emulator) -> None:
    settle(board)

    async def scenario() -> None:
        driver = await connect(board)
        board.command("corrupt 1")
        board.command("drop 1")
        status = await driver.status()  # two reads, each needing one retry
        assert status.position is Position.CLOSED
        await driver.aclose()

    asyncio.run(scenario())
    pending = board.state()["pending_faults"]
    assert (pending["corrupt_replies"], pending["drop_replies"]) == (0, 0)  # both were used


def test_relay_map_rejects_bad_config_with_allowed_keys() -> None:
    with pytest.raises(ValueError, match=r"keys \['open_coil'\] unknown; allowed"):
        RelayMap.from_dict({"open_coil": 1})
    with pytest.raises(ValueError, match=r"open_relay=9 must be in 0\.\.7"):
        RelayMap(open_relay=9)
    with pytest.raises(ValueError, match="inputs must be distinct"):
        RelayMap(presence_input=1)


def test_missing_port_is_a_clear_error(tmp_path: Path) -> None:
    from firmware_bridge.transport import PortUnavailable

    with pytest.raises(PortUnavailable, match="nope"):
        asyncio.run(connect_driver("modbus-rtu", str(tmp_path / "nope"), 9600))
    with pytest.raises(ValueError, match="allowed: parkgate-serial, modbus-rtu"):
        asyncio.run(connect_driver("can-bus", "/dev/null", 9600))


# -- two lanes on one board: one owner of the port -------------------------------------------------

def test_two_lanes_share_one_board_through_one_bus(tmp_path: Path) -> None:
    """Two drivers on one port (a board with two gates, emulated on one pty): one client owns the port,
    each lane pulses its own relay and sees its own loops; the port closes with its last lane."""
    from edge.tools.emulator.relayboard import gate_map
    from firmware_bridge.modbus import ModbusBus

    with running_emulator(tmp_path, "--modbus", "--gates", "2", name="shared") as emu:
        maps = [gate_map(RelayMap(), g) for g in (0, 1)]

        async def scenario() -> tuple[list, list]:
            bus = ModbusBus()
            a, b = await asyncio.gather(*(ModbusRelayDriver.connect(str(emu.link), 115200, m, bus=bus)
                                          for m in maps))
            assert a.client is b.client and bus.users(str(emu.link)) == 2
            with pytest.raises(GateRefused, match="one bus has one baud rate"):
                await ModbusRelayDriver.connect(str(emu.link), 9600, maps[0], bus=bus)
            emu.command("presence 1 1")
            statuses = await asyncio.gather(a.status(), b.status())
            await asyncio.gather(a.open_pulse(300), b.open_pulse(300), a.status(), b.status())
            coils = emu.state()["coils"][:2]
            await a.aclose()
            await a.aclose()  # twice: still one release
            assert bus.users(str(emu.link)) == 1 and (await b.status()).presence
            await b.aclose()
            assert bus.users(str(emu.link)) == 0
            return [s.presence for s in statuses], coils

        presence, coils = asyncio.run(scenario())
        assert presence == [False, True]  # gate 1's loop, not gate 0's
        assert coils == [True, True]
        gates = emu.state()["gates"]
        assert [g["opens"] for g in gates] == [1, 1]


# -- replies of the wrong kind (a late answer paired with the next request) -------------------------

def wrong_kind_reply(device_id: int = 1) -> bytes:
    """What a board sends for a flash write (fc 6, register 0x0200, 5 units): the echo of the write."""
    return rtu_frame(device_id, bytes((6, 0x02, 0x00, 0x00, 0x05)))


async def board_driver(board: RtuBoard, relay_map: RelayMap | None = None) -> ModbusRelayDriver:
    return await ModbusRelayDriver.connect(board.port, 115200, relay_map or RelayMap(), timeout_s=0.3)


def test_a_late_write_answer_landing_on_a_read_is_refused_and_the_read_asked_again() -> None:
    """The reviewer's e3: a write answered just past the timeout is retried; the client takes the late
    answer for the retry's, and the retry's answer (fc 6) lands on the next status read (fc 2). The read
    refuses it (never indexes ``.bits`` of it), waits for its own answer to drain and asks again: the
    status is right (before 2026-12-03 it failed, and ``parkgate gate status`` with it)."""
    with running_board() as board:
        async def scenario() -> None:
            board.inputs[RelayMap().closed_limit_input] = True
            driver = await board_driver(board)
            try:
                board.late_write = True
                pulse = asyncio.create_task(driver.open_pulse(500))
                await asyncio.sleep(0.05)  # the write is on the line; the read below waits behind it
                assert (await driver.status()).position is Position.CLOSED
                await pulse  # the retry took the first write's late answer: the open itself succeeded
            finally:
                await driver.aclose()

        asyncio.run(scenario())
        assert board.received[6] == 2  # the write and its retry
        assert board.received[2] == 2  # the read, refused a late answer, and asked again


def test_a_late_write_answer_landing_on_a_release_sends_the_release_again() -> None:
    """A write's late answer (fc 6: the hold's refresh cancelled by the release, or a write retried on a
    busy CPU) lands on the release's write (fc 5). Found 2026-12-03 in the two-exit-lanes test under
    load: ``parkgate gate release`` failed (the relay stayed on until its flash ran out). The release (a
    coil set to off: sending it twice does no more than once) is sent again once its own answer drained."""
    with running_board() as board:
        async def scenario() -> None:
            driver = await board_driver(board)
            try:
                board.late_write = True
                pulse = asyncio.create_task(driver.open_pulse(500))
                await asyncio.sleep(0.05)  # the write is on the line; the release below waits behind it
                await driver.release()
                await pulse
            finally:
                await driver.aclose()

        asyncio.run(scenario())
        assert board.received[5] == 2 and board.received[6] == 2  # the release and its second sending


def test_a_short_read_is_refused() -> None:
    """A board that answers fewer bits than were asked for (8 inputs of 16) is refused, not indexed."""
    with running_board() as board:
        async def scenario() -> None:
            driver = await board_driver(board, RelayMap(input_count=16))
            try:
                board.instead[2] = rtu_frame(1, bytes((2, 1, 0)))
                with pytest.raises(ModbusGateError, match="answered 8 discrete inputs, asked for 16"):
                    await driver.status()
                assert not (await driver.status()).presence
            finally:
                await driver.aclose()

        asyncio.run(scenario())


def test_polled_events_survive_a_reply_of_the_wrong_kind() -> None:
    """A poll answered with another request's reply is skipped like an unanswered one: the stream goes
    on and reports the change made meanwhile; cancelling the stream still cancels it."""
    with running_board() as board:
        async def scenario() -> InputChange:
            driver = await board_driver(board)
            events = driver.events()
            try:
                first = asyncio.ensure_future(anext(events))
                await wait_until(lambda: board.received[1] >= 1)  # one full poll: the stream has a baseline
                board.instead[2] = wrong_kind_reply()
                await wait_until(lambda: 2 not in board.instead)
                board.inputs[RelayMap().presence_input] = True
                event = await asyncio.wait_for(first, 3)
                pending = asyncio.ensure_future(anext(events))
                await asyncio.sleep(0.1)
                pending.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await pending
                return event
            finally:
                await events.aclose()
                await driver.aclose()

        event = asyncio.run(scenario())
        assert (event.kind, event.value) == (EventKind.PRESENCE, 1)


async def wait_until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "board never got there"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize(("reply", "expected", "reason"), [
    (WriteSingleRegisterResponse(address=0x200, registers=[5]), ReadDiscreteInputsResponse,
     r"function code 6 \(WriteSingleRegisterResponse\), expected 2 \(ReadDiscreteInputsResponse\)"),
    (ReadDiscreteInputsResponse(bits=[True] * 8), ReadCoilsResponse,  # a subclass, but another code
     r"function code 2 .*expected 1"),
    (ReadCoilsResponse(bits=[False] * 8), WriteSingleCoilResponse, r"function code 1 .*expected 5"),
    (ExceptionResponse(2, 2), ReadDiscreteInputsResponse, "ExceptionResponse"),
])
def test_check_reply_refuses_another_kind_of_reply(reply: ModbusPDU, expected: type[ModbusPDU],
                                                    reason: str) -> None:
    with pytest.raises(ModbusGateError, match=reason):
        check_reply(reply, expected, "relay board 1 on /dev/ttyUSB0")


def test_check_reply_passes_the_reply_that_was_asked_for() -> None:
    for reply in (ReadCoilsResponse(bits=[True]), ReadDiscreteInputsResponse(bits=[False]),
                  WriteSingleCoilResponse(address=0, bits=[False]),
                  WriteSingleRegisterResponse(address=0x200, registers=[5])):
        check_reply(reply, type(reply), "relay board 1")
