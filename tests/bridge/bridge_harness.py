"""Shared helpers for the bridge tests: emulator processes on real ptys, and their control channel."""

from __future__ import annotations

import json
import re
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edge.support.proc import ManagedProcess


class Emulator:
    """A running `parkgate gate emulate` process and a client for its control channel."""

    def __init__(self, proc: ManagedProcess, link: Path, control: tuple[str, int]) -> None:
        self.proc = proc
        self.link = link
        self.control = socket.create_connection(control, timeout=5)
        self._reader = self.control.makefile("rb")

    def command(self, line: str) -> dict:
        self.control.sendall(line.encode() + b"\n")
        return json.loads(self._reader.readline())

    def state(self) -> dict:
        return self.command("state")

    def wait_for(self, predicate, timeout: float = 5.0, what: str = "condition") -> dict:  # noqa: ANN001
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


@contextmanager
def running_emulator(tmp_path: Path, *extra: str, name: str = "gate") -> Iterator[Emulator]:
    link = tmp_path / name
    log = tmp_path / f"{name}-emulator.log"
    argv = [sys.executable, "-m", "edge.cli", "gate", "emulate", "--link", str(link),
            "--open-time", "0.2", "--close-time", "0.2", *extra]
    with ManagedProcess(argv, log) as proc:
        control = _wait_ready(proc, log)
        emulator = Emulator(proc, link, control)
        try:
            yield emulator
        finally:
            emulator.close()


def _wait_ready(proc: ManagedProcess, log: Path, timeout: float = 15.0) -> tuple[str, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text() if log.exists() else ""
        if "READY" in text:
            host, port = re.search(r"^CONTROL (\S+):(\d+)$", text, re.M).groups()  # type: ignore[union-attr]
            return host, int(port)
        if not proc.alive():
            break
        time.sleep(0.05)
    raise RuntimeError(f"emulator did not become ready:\n{proc.log_tail()}")
