"""ParkgateSerialDriver against the controller emulator over a real pty, through pyserial."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest
from bridge_harness import Emulator, running_emulator

from firmware_bridge.client import GateClient, GateTimeout, StreamDecoder
from firmware_bridge.driver import ParkgateSerialDriver
from firmware_bridge.framer import Frame, encode_frame
from firmware_bridge.gate import GateRefused
from firmware_bridge.messages import Ack, Close, Event, EventKind, Fault, OpenPulse, Position, Result
from firmware_bridge.transport import SerialSettings


@pytest.fixture
def emulator(tmp_path: Path):  # noqa: ANN201
    with running_emulator(tmp_path) as emu:
        yield emu


async def connect(emulator: Emulator, **options: float) -> ParkgateSerialDriver:
    options = {"timeout_s": 0.2, "retries": 3, "heartbeat_s": 0.1} | options
    return await ParkgateSerialDriver.connect(str(emulator.link), 115200, **options)


def test_open_pulse_status_and_events(emulator: Emulator) -> None:
    async def scenario() -> list:
        driver = await connect(emulator)
        seen = []

        async def collect() -> None:
            async for event in driver.events():
                seen.append((event.kind, event.value))
                if (event.kind, event.value) == (EventKind.POSITION, Position.CLOSED):
                    return

        collector = asyncio.create_task(collect())
        await asyncio.sleep(0.05)
        assert (await driver.status()).position is Position.CLOSED
        await driver.open_pulse(300)
        await asyncio.wait_for(collector, 3)
        status = await driver.status()
        await driver.aclose()
        assert status.opens == 1 and status.position is Position.CLOSED
        return seen

    seen = asyncio.run(scenario())
    assert [v for k, v in seen if k is EventKind.POSITION] == [
        Position.OPENING, Position.OPEN, Position.CLOSING, Position.CLOSED]
    assert emulator.state()["opens"] == 1


def test_crc_errors_on_replies_are_retried(emulator: Emulator) -> None:
    emulator.command("corrupt 2")

    async def scenario() -> tuple[int, int]:
        driver = await connect(emulator, heartbeat_s=60)
        await driver.open_pulse(200)
        stats = driver.client.stats, driver.client.decoder.frames.stats
        await driver.aclose()
        return stats[0].retries, stats[1].crc_errors + stats[1].malformed

    retries, bad_frames = asyncio.run(scenario())
    assert retries == 2 and bad_frames == 2
    state = emulator.state()
    assert state["opens"] == 1 and state["duplicates"] == 2  # executed once, answered three times
    assert state["pending_faults"]["corrupt_replies"] == 0


def test_lost_replies_time_out_and_are_retried_then_give_up(emulator: Emulator) -> None:
    async def scenario() -> int:
        driver = await connect(emulator, heartbeat_s=60)
        emulator.command("drop 1")
        await driver.open_pulse(200)
        retries = driver.client.stats.retries
        emulator.command("drop 10")
        with pytest.raises(GateTimeout, match="no reply .* after 4 attempts"):
            await driver.status()
        await driver.aclose()
        return retries

    assert asyncio.run(scenario()) == 1
    assert emulator.state()["opens"] == 1


def test_cable_pull_reconnects_within_two_seconds(emulator: Emulator) -> None:
    async def scenario() -> float:
        driver = await connect(emulator)
        await driver.status()
        emulator.command("unplug 0.3")
        await asyncio.sleep(0.1)
        assert not driver.client.transport.connected
        t0 = time.monotonic()
        await driver.client.transport.wait_connected(5)
        elapsed = time.monotonic() - t0
        status = await driver.status()
        await driver.aclose()
        assert status.position is Position.CLOSED
        assert driver.client.transport.reconnects == 1
        return elapsed

    assert asyncio.run(scenario()) < 2.0


def test_heartbeats_keep_a_hold_and_release_ends_it(emulator: Emulator) -> None:
    async def scenario() -> None:
        driver = await connect(emulator, heartbeat_s=0.1)
        await driver.hold_open(watchdog_ms=400)
        await asyncio.sleep(1.2)  # three watchdog periods
        assert emulator.state()["held"] is True
        await driver.release()
        assert emulator.state()["held"] is False
        await driver.aclose()

    asyncio.run(scenario())


HOLDER = """
import asyncio, sys
from firmware_bridge.driver import ParkgateSerialDriver
async def main():
    driver = await ParkgateSerialDriver.connect(sys.argv[1], 115200, heartbeat_s=0.1)
    await driver.hold_open(watchdog_ms=500)
    print("HELD", flush=True)
    await asyncio.sleep(60)
asyncio.run(main())
"""


def test_killed_daemon_never_leaves_the_gate_open(emulator: Emulator) -> None:
    daemon = subprocess.Popen([sys.executable, "-c", HOLDER, str(emulator.link)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert daemon.stdout is not None and daemon.stdout.readline().strip() == "HELD"
        assert emulator.state()["held"] is True
        daemon.kill()
        killed_at = time.monotonic()
    finally:
        daemon.kill()
        daemon.wait()
    state = emulator.wait_for(lambda s: not s["held"], timeout=3, what="watchdog release")
    assert time.monotonic() - killed_at < 1.5
    assert "WATCHDOG" in state["faults"] and state["output"] is False
    emulator.wait_for(lambda s: s["position"] == "CLOSED", timeout=3, what="barrier closed")


def test_never_closes_on_a_vehicle_on_the_safety_loop(emulator: Emulator) -> None:
    async def scenario() -> None:
        driver = await connect(emulator)
        await driver.open_pulse(2000)
        emulator.command("safety 1")
        await asyncio.sleep(0.1)  # the SAFETY event reaches the client
        sent_before = emulator.state()["rx"]["frames"]
        with pytest.raises(GateRefused, match="safety loop"):
            await driver.close()
        assert emulator.state()["rx"]["frames"] - sent_before <= 3  # a status re-check and heartbeats
        # the firmware enforces it too, whatever a host sends
        assert await driver.client.request(Close()) == Ack(Result.SAFETY_OCCUPIED)
        await asyncio.sleep(2.2)
        assert emulator.state()["position"] == "OPEN"  # pulse over, vehicle still underneath
        emulator.command("safety 0")
        await driver.close()
        await driver.aclose()

    asyncio.run(scenario())
    emulator.wait_for(lambda s: s["position"] == "CLOSED", timeout=3, what="barrier closed")


def test_motor_fault_is_reported_and_refuses_open(emulator: Emulator) -> None:
    async def scenario() -> None:
        driver = await connect(emulator)
        events = driver.events()
        first = asyncio.ensure_future(anext(events))
        await asyncio.sleep(0.05)
        emulator.command("fault motor 1")
        event = await asyncio.wait_for(first, 2)
        assert (event.kind, Fault(event.value)) == (EventKind.FAULT, Fault.MOTOR)
        with pytest.raises(GateRefused, match="FAULT"):
            await driver.open_pulse(500)
        assert Fault.MOTOR in (await driver.status()).faults
        await events.aclose()
        await driver.aclose()

    asyncio.run(scenario())
    assert emulator.state()["opens"] == 0


def test_an_open_answered_late_is_matched_by_its_sequence_number(emulator: Emulator) -> None:
    """The controller executes the open at once and answers 1.5 s late, after the client's 4 attempts
    of 0.2 s: the client keeps listening for that sequence number (sending nothing more) and the open
    returns as done; a heartbeat after it is answered normally. Without a late window it is a
    GateTimeout although the gate opened."""
    emulator.command("delay-open 1.5")

    async def scenario() -> tuple[float, int]:
        driver = await connect(emulator)
        started = time.monotonic()
        await driver.open_pulse(300)
        took = time.monotonic() - started
        await driver.status()
        late = driver.client.stats.late_replies
        await driver.aclose()
        return took, late

    took, late = asyncio.run(scenario())
    assert 1.4 < took < 2.5 and late == 1
    assert emulator.state()["open_commands"] == 1

    emulator.command("delay-open 1.5")

    async def without_late_window() -> None:
        driver = await connect(emulator)
        try:
            with pytest.raises(GateTimeout, match="after 4 attempts"):
                await driver.client.request(OpenPulse(300))
        finally:
            await driver.aclose()

    asyncio.run(without_late_window())
    assert emulator.state()["open_commands"] == 2  # it opened all the same: hence the late window


# -- EVENT values that are no defined code (docs/gate-protocol.md §3, §6) ---------------------------

UNDEFINED_EVENTS = [(1, 2), (1, 0xFF), (2, 0x80), (3, 200), (4, 0xE0), (5, 7)]  # (kind, value)


def event_wire(seq: int, kind: int, value: int) -> bytes:
    return encode_frame(Frame(seq=seq, msg_type=0x83, payload=bytes((kind, value))))


def test_undefined_event_values_are_counted_and_dropped_by_the_stream_decoder() -> None:
    wire = b"".join(event_wire(seq, *event) for seq, event in enumerate(UNDEFINED_EVENTS))
    decoder = StreamDecoder()
    assert decoder.feed(wire + event_wire(9, 2, 1)) == [(9, Event(EventKind.SAFETY, 1))]
    assert decoder.codec_errors == len(UNDEFINED_EVENTS)


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, str]]:
    """A bare pty: the test writes the controller's bytes on the master, the client opens the slave."""
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    try:
        yield master, os.ttyname(slave)
    finally:
        os.close(slave)
        os.close(master)


def test_undefined_event_values_over_a_pty_change_no_input(pty_pair: tuple[int, str]) -> None:
    """CRC-valid EVENT frames with undefined values (SAFETY 0x80, PRESENCE 2...) reach the client through
    pyserial: each is a codec error, none becomes an event or moves ``safety_occupied``; the valid
    event behind them is delivered."""
    master, port = pty_pair

    async def scenario() -> tuple[Event, GateClient]:
        client = await GateClient(SerialSettings(port), heartbeat_s=60).start()
        events = client.events()
        try:
            first = asyncio.ensure_future(anext(events))
            await asyncio.sleep(0.05)  # the subscription is in place
            bad = b"".join(event_wire(seq, *event) for seq, event in enumerate(UNDEFINED_EVENTS, 1))
            os.write(master, bad + event_wire(len(UNDEFINED_EVENTS) + 1, 1, 1))
            return await asyncio.wait_for(first, 3), client
        finally:
            await events.aclose()
            await client.aclose()

    event, client = asyncio.run(scenario())
    assert event == Event(EventKind.PRESENCE, 1)
    assert client.stats.codec_errors == len(UNDEFINED_EVENTS)
    assert client.stats.events == 1 and client.safety_occupied is False
