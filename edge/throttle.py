"""Rate limits for what outsiders can make the gateway do over and over: verify a command, write a log
line, publish an alert. A token bucket per key (a command topic, an alert code), with a bounded
number of keys so that made-up keys cannot grow memory, and a count of what each key had refused
since it was last let through (so a log line can say how many it stands for).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class _Bucket:
    tokens: float
    at: float
    refused: int = 0


@dataclass
class Throttle:
    """``rate_per_s`` tokens per second per key, at most ``burst`` saved up; ``max_keys`` keys, the
    least recently used forgotten first (a forgotten key starts again with a full bucket)."""

    rate_per_s: float
    burst: float
    max_keys: int = 256
    clock: Callable[[], float] = time.monotonic
    _buckets: OrderedDict[str, _Bucket] = field(default_factory=OrderedDict, repr=False)

    def __post_init__(self) -> None:
        if self.rate_per_s <= 0 or self.burst < 1 or self.max_keys < 1:
            raise ValueError(f"throttle needs rate_per_s > 0, burst >= 1, max_keys >= 1 (got "
                             f"{self.rate_per_s}, {self.burst}, {self.max_keys})")

    def allow(self, key: str) -> bool:
        """Take one token of ``key``; False (and counted as refused) when it has none."""
        now = self.clock()
        bucket = self._buckets.pop(key, None) or _Bucket(self.burst, now)
        self._buckets[key] = bucket
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        # max(0, ...): a clock that went back (a test clock) gives no tokens rather than negative ones.
        bucket.tokens = min(self.burst, bucket.tokens + max(0.0, now - bucket.at) * self.rate_per_s)
        bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return True
        bucket.refused += 1
        return False

    def take_refused(self, key: str) -> int:
        """How many times ``key`` was refused since this was last asked (then reset to 0)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0
        refused, bucket.refused = bucket.refused, 0
        return refused
