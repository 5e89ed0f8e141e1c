"""Start a gate emulator process (`edge.tools.emulator`) and talk to its control channel
(tests, benchmark, demo/chaos harness)."""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from edge.tools.proc import ManagedProcess


class EmulatorHandle:
    """A running `parkgate gate emulate` process: its port (``link``) and its control channel."""

    def __init__(self, proc: ManagedProcess, link: Path, control: tuple[str, int]) -> None:
        self.proc = proc
        self.link = link
        self.control = socket.create_connection(control, timeout=5)
        self._reader = self.control.makefile("rb")
        self._lock = threading.Lock()

    def command(self, line: str) -> dict:
        """One control-channel command (see docs/gate-protocol.md); returns the JSON reply. Thread-safe:
        `make chaos` pulls a lane's cable from one thread while the lane's driver asks for its state from
        another, and without the lock one could read the other's reply."""
        with self._lock:
            self.control.sendall(line.encode() + b"\n")
            return json.loads(self._reader.readline())

    def state(self) -> dict:
        return self.command("state")

    def wait_for(self, predicate: Callable[[dict], bool], timeout: float = 5.0,
                 what: str = "condition") -> dict:
        deadline = time.monotonic() + timeout
        while True:
            state = self.state()
            if predicate(state):
                return state
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not reached in {timeout}s; emulator state: {state}")
            time.sleep(0.02)

    def close(self) -> None:
        self._reader.close()
        self.control.close()

    def gate(self, index: int) -> GateView:
        """Gate ``index`` of a relay board shared by lanes (``--modbus --gates N``)."""
        return GateView(self, index)


class GateView:
    """One gate of a shared relay board, with the handle's ``command``/``state`` (as ``play_visit`` uses
    them): input commands go to this gate, states show this gate's fields at the top level."""

    def __init__(self, handle: EmulatorHandle, index: int) -> None:
        self.handle = handle
        self.index = index

    def command(self, line: str) -> dict:
        words = line.split()
        if words[:1] in (["presence"], ["safety"]):
            line = f"{line} {self.index}"
        return self._mine(self.handle.command(line))

    def state(self) -> dict:
        return self._mine(self.handle.state())

    def _mine(self, reply: dict) -> dict:
        return {**reply, **reply["gates"][self.index]} if "gates" in reply else reply


@contextmanager
def running_emulator(workdir: Path, *extra: str, name: str = "gate") -> Iterator[EmulatorHandle]:
    """Run an emulator with its pty linked at ``workdir/name``; extra args go to `gate emulate`."""
    link = workdir / name
    log = workdir / f"{name}-emulator.log"
    argv = [sys.executable, "-m", "edge.tools.emulator", "--link", str(link), *extra]
    with ManagedProcess(argv, log) as proc:
        handle = EmulatorHandle(proc, link, _wait_ready(proc, log))
        try:
            yield handle
        finally:
            handle.close()


def _wait_ready(proc: ManagedProcess, log: Path, timeout: float = 15.0) -> tuple[str, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text() if log.exists() else ""
        found = re.search(r"^CONTROL (\S+):(\d+)$", text, re.M)
        if found and "READY" in text:
            return found.group(1), int(found.group(2))
        if not proc.alive():
            break
        time.sleep(0.05)
    raise RuntimeError(f"emulator did not become ready:\n{proc.log_tail()}")
