"""What reading the store's allow/deny lists adds to each decision (`Gatekeeper.live_policy`: the entries
in force now, joined to the config's lists), for 0, 100 and 1,000 entries.

    python -m edge.tools.list_bench
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from edge.access.policy import Policy
from edge.config import Config
from edge.daemon.gatekeeper import Gatekeeper
from edge.store import ListEntry, Store

REPEATS = 200
NOW_MS = 1_800_000_000_000


def per_decision_ms(gatekeeper: Gatekeeper) -> float:
    start = time.perf_counter()
    for _ in range(REPEATS):
        live = gatekeeper.live_policy(NOW_MS)
        _ = live.allow, live.deny  # the sets a decision looks in
    return (time.perf_counter() - start) / REPEATS * 1000


def main() -> None:
    with tempfile.TemporaryDirectory() as work:
        for count in (0, 100, 1000):
            with Store(Path(work) / f"lists-{count}.sqlite") as store:
                for i in range(count):
                    store.put_list_entry(ListEntry("allow" if i % 2 else "deny", f"AB{i:05d}"))
                policy = Policy("LOT-1", Config().policy)
                gatekeeper = Gatekeeper(store, policy, lambda plate: "0x" + "0" * 64, chain_on=False,
                                        mqtt_on=False)
                ms = per_decision_ms(gatekeeper)
                print(f"{count:>5} entries: {ms:.2f} ms per decision")


if __name__ == "__main__":
    main()
