"""Micro-benchmark of the access decision: ``python -m edge.tools.access_bench``.

Times :func:`decide` for one fuzzy read against a synthetic cache of 10,000 active bookings, both
when every booking is passed in and when the daemon first fetches only the bookings whose
commitment is among the read's candidates (the intended use), and the candidate generation alone.
"""

from __future__ import annotations

import random
import string
import timeit

from edge.access.decide import commitment_function, committed_candidates, decide
from edge.access.policy import Policy
from edge.access.sessions import Presence
from edge.access.types import BookingStatus, BookingView, Direction
from edge.vision.types import PlateRead

LOT = "LOT-BENCH"
NOW_MS = 1_790_000_000_000
HOUR_MS = 3_600_000


def main(bookings_count: int = 10_000, repeats: int = 200) -> None:
    commit = commitment_function(b"bench-secret-0123456789abcdef", LOT)
    rng = random.Random(1)
    alphabet = string.ascii_uppercase + string.digits
    plates = ["".join(rng.choice(alphabet) for _ in range(7)) for _ in range(bookings_count)]
    start, end = NOW_MS - HOUR_MS, NOW_MS + HOUR_MS
    bookings = [BookingView(f"b{i}", LOT, commit(p), start, end, BookingStatus.VERIFIED)
                for i, p in enumerate(plates)]
    bookings.append(BookingView("target", LOT, commit("80S8125"), NOW_MS - HOUR_MS, NOW_MS + HOUR_MS,
                                BookingStatus.VERIFIED))
    policy, read = Policy(LOT), PlateRead("B0S8I25", 0.9)  # two confusions away from the booked plate
    matches = committed_candidates(read.text, policy, commit)
    wanted = {m.commitment for m in matches}
    prefiltered = [b for b in bookings if b.commitment in wanted]

    def run(cache: list[BookingView]) -> None:
        decision = decide(read, NOW_MS, cache, Presence(), policy, direction=Direction.ENTRY, commit=commit)
        assert decision.allow and decision.booking_id == "target", decision

    print(f"decide, {len(bookings)} bookings passed in: "
          f"{timeit.timeit(lambda: run(bookings), number=repeats) / repeats * 1e3:.3f} ms")
    print(f"decide, {len(prefiltered)} prefiltered bookings: "
          f"{timeit.timeit(lambda: run(prefiltered), number=repeats) / repeats * 1e3:.3f} ms")
    per = timeit.timeit(lambda: committed_candidates(read.text, policy, commit), number=repeats) / repeats
    print(f"candidates + commitments ({len(matches)} within distance {policy.config.max_plate_distance}): "
          f"{per * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
