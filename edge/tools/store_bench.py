"""Store micro-benchmark: durable gate-event recording and the booking lookup of a plate read.

Run ``python -m edge.tools.store_bench [--events N] [--dir DIR]`` (DIR on the disk you deploy to: the
figure is dominated by fsync with synchronous=FULL). Prints one table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from edge.store import Booking, GateEventRow, RentalEvent, Store, new_event_id

LOT = "lot-bench"


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _seed_bookings(store: Store, n: int) -> list[str]:
    store.upsert_rental_event(RentalEvent("r-bench", "s1", LOT, "0x" + "11" * 20, 0, 10**13, 1, "open", 1,
                                          "0x" + "00" * 32, 0))
    commitments = [f"0x{i:064x}" for i in range(n)]
    with store.transaction():
        for i, c in enumerate(commitments):
            store.upsert_booking(Booking(f"b{i}", "r-bench", "s1", LOT, "0x" + "22" * 20, c, 0, 10**13,
                                         "verified", 2, "0x" + "00" * 32, i))
    return commitments


def run(events: int, directory: Path | None) -> list[tuple[str, str]]:
    with tempfile.TemporaryDirectory(dir=directory) as tmp, Store(Path(tmp) / "bench.sqlite") as store:
        record_ms = []
        for _ in range(events):
            ev = GateEventRow(new_event_id(), "in-1", "entry", "check_in", "booking valid",
                           int(time.time() * 1000), plate_commitment="0x" + "ab" * 32, plate_masked="AB***1",
                           confidence=0.9)
            t0 = time.perf_counter()
            store.record_gate_event(ev, ("chain", "mqtt"))
            record_ms.append((time.perf_counter() - t0) * 1000)
        commitments = _seed_bookings(store, 5000)
        lookup_ms = []
        for i in range(200):
            candidates = commitments[i * 20:i * 20 + 64]
            t0 = time.perf_counter()
            store.bookings_for_commitments(LOT, candidates)
            lookup_ms.append((time.perf_counter() - t0) * 1000)
    return [
        ("record_gate_event (+2 outbox rows, fsync) p50 ms", f"{statistics.median(record_ms):.2f}"),
        ("record_gate_event p99 ms", f"{_percentile(record_ms, 0.99):.2f}"),
        ("bookings_for_commitments, 64 candidates of 5000 bookings, p50 ms",
         f"{statistics.median(lookup_ms):.3f}"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--dir", type=Path, default=None,
                        help="where the scratch database goes (default: $TMPDIR)")
    args = parser.parse_args()
    for name, value in run(args.events, args.dir):
        print(f"{name:<68} {value:>8}")


if __name__ == "__main__":
    main()
