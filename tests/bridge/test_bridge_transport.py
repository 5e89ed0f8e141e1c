"""SerialTransport on a bare pty: writes never block the loop, and a full buffer is dropped and counted."""

from __future__ import annotations

import asyncio
import os
import tty

from firmware_bridge.framer import FrameDecoder, encode_frame
from firmware_bridge.messages import Heartbeat, encode_message
from firmware_bridge.transport import SerialSettings, SerialTransport


def test_device_that_stops_reading_never_blocks_the_loop() -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    frame = encode_frame(encode_message(Heartbeat(), 1))

    async def scenario() -> tuple[int, bytes]:
        transport = SerialTransport(SerialSettings(os.ttyname(slave)), on_bytes=lambda _data: None)
        await transport.start()
        for _ in range(20_000):  # ~160 kB into a pty whose other end nobody reads: must not block
            transport.write(frame)
        dropped = transport.tx_dropped
        while True:  # the device catches up...
            try:
                os.read(master, 65536)
            except BlockingIOError:
                break
        transport.write(frame)  # ...and the next frame arrives cleanly after a resync delimiter
        await asyncio.sleep(0.05)
        after = os.read(master, 1024)
        await transport.aclose()
        return dropped, after

    os.set_blocking(master, False)
    try:
        dropped, after = asyncio.run(scenario())
    finally:
        os.close(master)
        os.close(slave)
    assert dropped > 0
    assert FrameDecoder().feed(after) == FrameDecoder().feed(frame)
    assert after.startswith(b"\x00")
