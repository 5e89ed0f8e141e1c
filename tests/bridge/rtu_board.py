"""A minimal Modbus RTU relay board on a real pty, scriptable to answer out of turn.

The relay-board emulator (a pymodbus server) always answers in turn. A real board can be late: it
answers a write just after the client's timeout, the client retries, takes that late answer for the
retry's, and the retry's own answer then lands on the next request (pymodbus 3 pairs the next frame
with whatever request waits, whatever its function code). This board plays that, deterministically
(driven by the requests it receives, not by timing), for the driver under test, which opens the slave
side of the pty through pymodbus and pyserial like a USB-RS485 adapter.

Function codes 1, 2 (reads, answered from ``coils``/``inputs``), 5 and 6 (writes, echoed): every
request of these is 8 bytes.
"""

from __future__ import annotations

import os
import select
import threading
import tty
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager

from pymodbus.framer.rtu import FramerRTU

REQUEST_BYTES = 8


def rtu_frame(device_id: int, pdu: bytes) -> bytes:
    """``pdu`` (function code and data) from ``device_id``, with the RTU CRC."""
    frame = bytes((device_id,)) + pdu
    return frame + FramerRTU.compute_CRC(frame).to_bytes(2, "big")


def pack_bits(bits: list[bool]) -> bytes:
    """Modbus bit order: the first bit is the least significant bit of the first byte."""
    return bytes(sum(1 << i for i, on in enumerate(bits[start:start + 8]) if on)
                 for start in range(0, len(bits), 8))


class RtuBoard(threading.Thread):
    def __init__(self) -> None:
        super().__init__(name="rtu-board", daemon=True)
        self.master, self._slave = os.openpty()
        tty.setraw(self.master)
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self.coils = [False] * 8
        self.inputs = [False] * 16
        self.instead: dict[int, bytes] = {}  # function code: frame sent once in place of its answer
        self.late_write = False  # answer the next write (fc 6) only when its retry arrives
        self.received: Counter[int] = Counter()  # requests per function code
        self._held: deque[bytes] = deque()
        self._lagging = 0
        self._halt = threading.Event()

    def run(self) -> None:
        buffer = b""
        while not self._halt.is_set():
            if not select.select([self.master], [], [], 0.05)[0]:
                continue
            try:
                buffer += os.read(self.master, 256)
            except OSError:
                return
            while len(buffer) >= REQUEST_BYTES:
                request, buffer = buffer[:REQUEST_BYTES], buffer[REQUEST_BYTES:]
                self._on_request(request)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=2)
        os.close(self._slave)
        os.close(self.master)

    def _on_request(self, request: bytes) -> None:
        """Answer in turn, or (``late_write``) one request behind for the write and its retry."""
        self.received[request[1]] += 1
        answer = self._answer(request)
        out = self._held.popleft() if self._held else b""
        if self.late_write and request[1] == 6:
            self.late_write, self._lagging = False, 1
            self._held.append(answer)
        elif self._lagging:
            self._lagging -= 1
            self._held.append(answer)
        else:
            out += answer
        if out:
            os.write(self.master, out)  # one write: a caught-up answer follows the late one at once

    def _answer(self, request: bytes) -> bytes:
        device_id, function_code = request[0], request[1]
        if function_code in self.instead:
            return self.instead.pop(function_code)
        if function_code in (1, 2):
            count = int.from_bytes(request[4:6], "big")
            data = pack_bits((self.coils if function_code == 1 else self.inputs)[:count])
            return rtu_frame(device_id, bytes((function_code, len(data))) + data)
        return request  # a write's answer echoes the request


@contextmanager
def running_board() -> Iterator[RtuBoard]:
    board = RtuBoard()
    board.start()
    try:
        yield board
    finally:
        board.stop()
