"""`parkgate console serve` as a subprocess (a real uvicorn) for the tests and the demo: its config section,
its users (added with `parkgate console user add`, as an installer would), started and stopped with its
whole process group."""

from __future__ import annotations

import http.cookiejar
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
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
    def __init__(self, config: Path, port: int, log: Path, prefix: Sequence[str] = ()) -> None:
        """``prefix``: a command that runs the console (e.g. setpriv dropping a capability)."""
        self.port = port
        self.url = f"http://{LOOPBACK}:{port}"
        self.process = ManagedProcess([*prefix, sys.executable, "-m", "edge.cli", "console", "serve",
                                       "--config", str(config)], log)

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




def log_in(url: str, user: str, password: str) -> urllib.request.OpenerDirector:
    """An HTTP client logged in to the console (its session cookie kept), as a browser would be."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    with opener.open(url + "/login", timeout=30) as response:
        token = re.search(r'name="csrf" value="([^"]+)"', response.read().decode())
    if token is None:
        raise RuntimeError(f"no login form at {url}/login")
    form = urllib.parse.urlencode({"csrf": token.group(1), "user": user, "password": password}).encode()
    with opener.open(url + "/login", form, timeout=30) as response:
        if "/login" in response.url:
            raise RuntimeError(f"console login as {user} refused")
    return opener


class LiveWatcher:
    """Watches a lane's live view (the MJPEG stream) on a thread, as an open browser tab does; counts the
    frames received."""

    def __init__(self, opener: urllib.request.OpenerDirector, url: str, lane: str) -> None:
        self.opener, self.url, self.lane = opener, url, lane
        self.frames = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"live-{lane}", daemon=True)

    def __enter__(self) -> LiveWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        with self.opener.open(f"{self.url}/live/{self.lane}.mjpg", timeout=30) as stream:
            while not self._stop.is_set():
                chunk = stream.read1(65536)
                if not chunk:
                    return
                self.frames += chunk.count(b"Content-Type: image/jpeg")
