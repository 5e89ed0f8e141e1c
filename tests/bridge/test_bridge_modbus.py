"""ModbusRelayDriver against the relay-board emulator (a pymodbus RTU server) over real ptys."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from bridge_harness import Emulator, running_emulator

from firmware_bridge.driver import connect_driver
from firmware_bridge.gate import GateRefused
from firmware_bridge.messages import EventKind, Position
from firmware_bridge.modbus import ModbusRelayDriver
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
