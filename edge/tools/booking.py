"""`parkgate booking-service` as a subprocess (a real uvicorn) on a free loopback port, for the tests
and the demo; stopped with its whole process group."""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from edge.booking.client import post_json
from edge.tools.net import free_tcp_port, wait_for_tcp
from edge.tools.proc import ManagedProcess

LOOPBACK = "127.0.0.1"


class BookingServiceProcess:
    def __init__(self, rpc: str, contract: str, lot: str, plate_key_file: Path, log: Path,
                 regions: str = "de", extra: tuple[str, ...] = ()) -> None:
        self.port = free_tcp_port(LOOPBACK)
        self.url = f"http://{LOOPBACK}:{self.port}"
        argv = [sys.executable, "-m", "edge.cli", "booking-service", "--rpc", rpc, "--contract", contract,
                "--lot", lot, "--plate-key-file", str(plate_key_file), "--plate-regions", regions,
                "--host", LOOPBACK, "--port", str(self.port), *extra]
        self.process = ManagedProcess(argv, log)

    def __enter__(self) -> BookingServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout_s: float = 60.0) -> BookingServiceProcess:
        self.process.start()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.process.alive():
                raise RuntimeError("booking service exited:\n" + self.process.log_tail())
            try:
                wait_for_tcp(LOOPBACK, self.port, timeout=0.5)
                if self.get("/healthz")[0] == 200:
                    return self
            except (TimeoutError, OSError):
                continue
        self.stop()
        raise RuntimeError("booking service did not answer in time:\n" + self.process.log_tail())

    def stop(self) -> None:
        self.process.stop()

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        return post_json(self.url + path, body)
