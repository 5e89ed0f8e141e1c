"""Crash-test writer: records gate events in a loop, printing each id only after its commit.

Usage: python tests/foundation/store_writer.py DB_PATH. Prints "ready" once the store is open.
Not a test module (no test_ prefix); tests/foundation/test_foundation_store_crash.py runs it.
"""

from __future__ import annotations

import hashlib
import itertools
import sys

from edge.store import GateEventRow, Store, new_event_id

KINDS = ("verified", "check_in", "check_out", "denied", "manual", "fault")


def event(n: int) -> GateEventRow:
    digest = hashlib.sha256(str(n).encode()).hexdigest()
    return GateEventRow(
        event_id=new_event_id(), lane=f"lane-{n % 3}", direction="entry" if n % 2 else "exit",
        kind=KINDS[n % len(KINDS)], reason=f"crash-writer #{n}", occurred_at_ms=1_790_000_000_000 + n,
        booking_id=f"b{n % 7}", plate_commitment="0x" + digest, plate_masked="AB***2",
        confidence=(n % 100) / 100, evidence_path=f"/var/lib/parkgate/evidence/{n}.jpg",
        evidence_sha256=digest,
    )


def main(path: str) -> None:
    with Store(path) as store:
        print("ready", flush=True)
        for n in itertools.count():
            ev = event(n)
            store.record_gate_event(ev, destinations=("chain", "mqtt"))
            print(ev.event_id, flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
