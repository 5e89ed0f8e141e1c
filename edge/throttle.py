"""Rate limits for what outsiders can make the gateway do over and over: verify a command, write a log
line, publish an alert, ask the booking service for a commitment. A token bucket per key (a command
topic, an alert code, a client address), with a bounded number of keys so that made-up keys cannot grow
memory, and a count of what each key had refused since it was last let through (so a log line can say
how many it stands for).

A full table never forgets a key whose bucket has not refilled: forgetting it would give that key a
full bucket again (a client spreading its requests over more keys than the table holds would never be
limited). Only a key whose bucket is full again, which is the same as a key never seen, makes room; when
there is none, a new key is refused (a table full of keys in use is itself a flood).
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

# How many of the least recently used keys a full table looks at for one whose bucket refilled.
_ROOM_SCAN = 64


@dataclass
class _Bucket:
    tokens: float
    at: float
    refused: int = 0


@dataclass
class Throttle:
    """``rate_per_s`` tokens per second per key, at most ``burst`` saved up; ``max_keys`` keys. When the
    table is full, a key whose bucket refilled is forgotten to make room (least recently used first);
    when none has, a new key is refused (``refused_new`` counts those)."""

    rate_per_s: float
    burst: float
    max_keys: int = 256
    clock: Callable[[], float] = time.monotonic
    refused_new: int = 0
    _buckets: OrderedDict[str, _Bucket] = field(default_factory=OrderedDict, repr=False)

    def __post_init__(self) -> None:
        if self.rate_per_s <= 0 or self.burst < 1 or self.max_keys < 1:
            raise ValueError(f"throttle needs rate_per_s > 0, burst >= 1, max_keys >= 1 (got "
                             f"{self.rate_per_s}, {self.burst}, {self.max_keys})")

    def _tokens(self, bucket: _Bucket, now: float) -> float:
        # max(0, ...): a clock that went back (a test clock) gives no tokens rather than negative ones.
        return min(self.burst, bucket.tokens + max(0.0, now - bucket.at) * self.rate_per_s)

    def _refilled(self, now: float) -> str | None:
        """Among the least recently used keys, one whose bucket is full again (as good as never seen)."""
        for key, bucket in itertools.islice(self._buckets.items(), _ROOM_SCAN):
            if self._tokens(bucket, now) >= self.burst:
                return key
        return None

    def _room(self, now: float) -> bool:
        """Forget one key whose bucket refilled if the table is full; False when the table is full of
        keys still being limited."""
        if len(self._buckets) < self.max_keys:
            return True
        key = self._refilled(now)
        if key is not None:
            del self._buckets[key]
        return key is not None

    def has_token(self, key: str) -> bool:
        """Whether ``allow(key)`` would let one through now (nothing taken, nothing stored)."""
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            return len(self._buckets) < self.max_keys or self._refilled(now) is not None
        return self._tokens(bucket, now) >= 1

    def allow(self, key: str) -> bool:
        """Take one token of ``key``; False (and counted as refused) when it has none, or when it is new
        and the table is full of keys whose buckets have not refilled."""
        now = self.clock()
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            if not self._room(now):
                self.refused_new += 1
                return False
            bucket = _Bucket(self.burst, now)
        self._buckets[key] = bucket
        bucket.tokens = self._tokens(bucket, now)
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


def allow_all(checks: Sequence[tuple[Throttle, str]]) -> int | None:
    """Take one token from every ``(throttle, key)`` when each has one, and return None; otherwise take
    none and return the index of the first that has none (the caller holds any lock the throttles
    need)."""
    for n, (throttle, key) in enumerate(checks):
        if not throttle.has_token(key):
            return n
    for n, (throttle, key) in enumerate(checks):
        if not throttle.allow(key):  # cannot happen after has_token (same clock tick aside): be safe
            return n
    return None
