"""Fuzz: 10^5 random and corrupted byte streams never crash the stack and never produce an open.

The oracle is independent of the decoder: the generator knows the exact wire bytes of every valid
open frame it put into a stream, so the number of opens executed may never exceed the number of
those frames that are still intact, between delimiters, after the corruption.
"""

from __future__ import annotations

import os
import random
import time

from bridge_harness import running_emulator
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.tools.emulator.controller import GateController, handle_frame
from firmware_bridge.client import GateClient
from firmware_bridge.framer import FrameDecoder, encode_frame
from firmware_bridge.messages import (
    Close,
    Heartbeat,
    HoldOpen,
    OpenPulse,
    Release,
    StatusRequest,
    encode_message,
)
from firmware_bridge.transport import SerialSettings

STREAMS = 100_000
NON_OPEN_COMMANDS = (Heartbeat(), StatusRequest(), Release(), Close())


def valid_stream(rng: random.Random, allow_open: bool) -> tuple[bytes, list[bytes]]:
    """A few command frames; returns the stream and the wire bytes of the opening frames in it."""
    parts, opens = [], []
    for _ in range(rng.randint(1, 4)):
        seq = rng.randrange(256)
        if allow_open and rng.random() < 0.4:
            command = rng.choice((OpenPulse(rng.randint(50, 30_000)), HoldOpen(rng.randint(200, 10_000))))
            wire = encode_frame(encode_message(command, seq))
            opens.append(wire)
        else:
            wire = encode_frame(encode_message(rng.choice(NON_OPEN_COMMANDS), seq))
        parts.append(wire)
    return b"".join(parts), opens


def corrupt(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        if not buf:
            break
        i = rng.randrange(len(buf))
        match rng.randrange(6):
            case 0:
                buf[i] ^= 1 << rng.randrange(8)
            case 1:
                buf[i] = rng.randrange(256)
            case 2:
                buf.insert(i, rng.randrange(256))
            case 3:
                del buf[i]
            case 4:
                del buf[i:]
            case _:
                buf[i:i] = buf[rng.randrange(len(buf)):][: rng.randint(1, 12)]
    return bytes(buf)


def make_stream(rng: random.Random, allow_open: bool = True) -> tuple[bytes, list[bytes]]:
    kind = rng.randrange(10 if allow_open else 7)
    if kind < 3:
        return rng.randbytes(rng.randint(1, 64)), []
    if kind < 5:
        return bytes(rng.choice((0, rng.randrange(256))) for _ in range(rng.randint(1, 48))), []
    stream, opens = valid_stream(rng, allow_open=kind >= 7)
    return corrupt(rng, stream), opens


def intact_opens(stream: bytes, open_wires: list[bytes]) -> int:
    """Open frames still present byte-for-byte and delimited on both sides (start of stream counts)."""
    segments = stream.split(b"\x00")[:-1]  # the last piece has no closing delimiter yet
    wanted = {wire[:-1] for wire in open_wires}
    return sum(1 for seg in segments if seg in wanted)


def feed_in_chunks(rng: random.Random, decoder: FrameDecoder, stream: bytes) -> list:
    frames, i = [], 0
    while i < len(stream):
        step = rng.randint(1, 16)
        frames += decoder.feed(stream[i:i + step])
        i += step
    return frames


def test_fuzz_controller_and_client_paths_never_crash_or_open_spuriously() -> None:
    rng = random.Random(20261125)
    spurious, opened_total, dropped = 0, 0, 0
    host = GateClient(SerialSettings("/dev/null"))  # never started: only its receive path is driven
    for n in range(STREAMS):
        stream, open_wires = make_stream(rng)
        controller = GateController()
        decoder = FrameDecoder()
        for frame in feed_in_chunks(rng, decoder, stream):
            handle_frame(controller, frame, now=n * 0.001)
        host._on_bytes(stream)  # the host's receive + dispatch path takes the same bytes without raising
        allowed = intact_opens(stream, open_wires)
        spurious += max(0, controller.opens - allowed)
        opened_total += controller.opens
        dropped += decoder.stats.dropped()
    assert spurious == 0
    assert opened_total > 1000, "the generator must also exercise intact open frames"
    assert dropped > STREAMS // 2, "most streams must have contained rejected frames"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=60), max_size=6))
def test_arbitrary_chunks_never_raise_on_either_side(chunks: list[bytes]) -> None:
    controller, decoder = GateController(), FrameDecoder()
    host = GateClient(SerialSettings("/dev/null"))
    for chunk in chunks:
        for frame in decoder.feed(chunk):
            handle_frame(controller, frame, now=0.0)
        host._on_bytes(chunk)
    assert controller.opens == 0  # random bytes carrying a valid CRC16 and an open type: ~2**-32


def test_garbage_over_the_pty_never_opens_the_emulated_gate(tmp_path) -> None:  # noqa: ANN001
    rng = random.Random(4)
    with running_emulator(tmp_path, "--no-pace") as emulator:
        fd = os.open(emulator.link, os.O_RDWR | os.O_NOCTTY)
        try:
            import tty

            tty.setraw(fd)
            for _ in range(400):
                stream, _ = make_stream(rng, allow_open=False)
                os.write(fd, stream)
            os.write(fd, b"\x00")
            time.sleep(0.3)
        finally:
            os.close(fd)
        state = emulator.state()
    assert state["opens"] == 0
    assert state["output"] is False
    assert state["rx"]["crc_errors"] + state["rx"]["malformed"] > 100
