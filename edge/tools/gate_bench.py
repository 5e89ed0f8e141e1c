"""Benchmark: open-command round trip (command sent -> acknowledged) over a pty.

`python -m edge.tools.gate_bench [--n N]`. A pty moves bytes at memory speed whatever the baud rate,
so the emulator paces every byte it sends and receives at 10 bit times of the configured baud
(start + 8 data + stop): the paced rows model the wire; the unpaced row is the software floor.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from edge.tools.emulator.launch import running_emulator
from firmware_bridge.client import GateClient
from firmware_bridge.framer import encode_frame
from firmware_bridge.messages import Ack, OpenPulse, Result, encode_message
from firmware_bridge.transport import SerialSettings

CASES = ((115200, True), (9600, True), (115200, False))


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def measure(port: str, baudrate: int, n: int) -> list[float]:
    settings = SerialSettings(port, baudrate)
    client = await GateClient(settings, timeout_s=1.0, retries=0, heartbeat_s=3600).start()
    try:
        await client.request(OpenPulse(50))  # warm-up
        samples = []
        for _ in range(n):
            t0 = time.perf_counter()
            reply = await client.request(OpenPulse(50))
            samples.append((time.perf_counter() - t0) * 1000)
            assert reply == Ack(Result.OK), reply
        return samples
    finally:
        await client.aclose()


def run(n: int) -> list[tuple[int, str, int, float, float]]:
    rows = []
    for baudrate, paced in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            extra = ["--baud", str(baudrate)] + ([] if paced else ["--no-pace"])
            with running_emulator(Path(tmp), *extra) as emulator:
                samples = asyncio.run(measure(str(emulator.link), baudrate, n))
        rows.append((baudrate, "paced" if paced else "unpaced", n, statistics.median(samples),
                     percentile(samples, 0.99)))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=300, help="open commands per row")
    args = parser.parse_args()
    request = len(encode_frame(encode_message(OpenPulse(50), 1)))
    reply = len(encode_frame(encode_message(Ack(Result.OK), 1)))
    print(f"open round trip over a pty, {datetime.now(UTC):%Y-%m-%d}, {platform.machine()}, "
          f"python {platform.python_version()}; request {request} B, ack {reply} B on the wire")
    print("paced = emulator holds each byte for 10 bit times at the baud rate (models the wire); "
          "unpaced = raw pty speed")
    print(f"{'baud':>7} {'pacing':>8} {'n':>5} {'median ms':>10} {'p99 ms':>8}")
    for baudrate, pacing, count, median, p99 in run(args.n):
        print(f"{baudrate:>7} {pacing:>8} {count:>5} {median:>10.2f} {p99:>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
