"""`parkgate console serve` as a subprocess (a real uvicorn) for the tests and the demo: its config section,
its users (added with `parkgate console user add`, as an installer would), started and stopped with its
whole process group."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from edge.tools.net import wait_for_tcp
from edge.tools.proc import ManagedProcess

LOOPBACK = "127.0.0.1"


def console_section(port: int, **extra: object) -> dict[str, object]:
    """The ``[console]`` table for a test or demo config: enabled, on loopback, at ``port``."""
    return {"enabled": True, "host": LOOPBACK, "port": port, **extra}


def add_user(config: Path, name: str, role: str, password: str) -> subprocess.CompletedProcess[str]:
    """`parkgate console user add NAME --role ROLE` with the password on stdin."""
    return subprocess.run([sys.executable, "-m", "edge.cli", "console", "user", "add", name, "--role", role,
                           "--config", str(config)], input=password + "\n", capture_output=True, text=True,
                          timeout=60, check=False)


class ConsoleProcess:
    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.port = port
        self.url = f"http://{LOOPBACK}:{port}"
        self.process = ManagedProcess([sys.executable, "-m", "edge.cli", "console", "serve", "--config",
                                       str(config)], log)

    def __enter__(self) -> ConsoleProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout_s: float = 60.0) -> ConsoleProcess:
        self.process.start()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.process.alive():
                raise RuntimeError("console exited:\n" + self.process.log_tail())
            try:
                wait_for_tcp(LOOPBACK, self.port, timeout=0.5)
                return self
            except TimeoutError:
                continue
        self.stop()
        raise RuntimeError("console did not listen in time:\n" + self.process.log_tail())

    def stop(self) -> int | None:
        return self.process.stop()


