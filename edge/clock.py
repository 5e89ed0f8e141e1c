"""Time the gateway can trust: the wall clock checked against a sanity floor.

A Raspberry Pi has no real-time clock. At a remote lot it boots with the last time saved on disk
(fake-hwclock) or with 1970, and NTP steps the clock later, forwards or backwards. So the wall clock
alone decides nothing that matters; the *best time* does:

- the **floor** is a time the gateway knows has passed: the newest of the build floor
  (:data:`BUILD_FLOOR_MS`), the last store write and the last chain block timestamp seen (both kept
  in the store's ``clock_floor`` row), carried forward on the monotonic clock while the process runs;
- the **best time** is the wall clock while it is at or ahead of the floor, the floor otherwise;
- the clock is **behind** (untrusted) when the wall clock is more than the tolerance behind the floor.

The best time never goes backwards within a process (a step back of the wall clock leaves it on the
floor, carried forward by the monotonic clock), and across restarts it starts from the persisted floor.
It is a lower bound of the true time: "expired" judged against it is certain, "not yet started" is not
(``docs/ARCHITECTURE.md``, "Time").

``PARKGATE_CLOCK_OFFSET_FILE`` (tests only): when this environment variable names a file, the wall
clock read through :func:`wall_clock_ms` is shifted by the signed number of seconds in that file
(re-read when the file changes). Integration tests use it to boot a real daemon days behind and to step
its clock at run time while its monotonic clock keeps running, as an NTP step does. It shifts only what
parkgate reads through this module (not SQLite's own ``now``, nor log timestamps). libfaketime was
tried and rejected: with the monotonic clock left real (a real step never moves it), Python's
``time.sleep`` fails with EINVAL under libfaketime 0.9.10; with the monotonic clock faked too, a step
back stalls asyncio.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

# 2026-12-01T00:00:00Z: this code did not exist before, so neither did a clock reading of a gateway
# running it. Raise it when releasing (a later floor catches more wrong clocks).
BUILD_FLOOR_MS = 1_796_083_200_000
DEFAULT_TOLERANCE_MS = 2_000
OFFSET_FILE_ENV = "PARKGATE_CLOCK_OFFSET_FILE"
UNTRUSTED_POLICIES = ("floor", "lenient", "strict")

Millis = Callable[[], int]


class _OffsetFile:
    """The test hook's offset (seconds, in a file), re-read when the file's mtime or size changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._offset_ms = 0

    def offset_ms(self) -> int:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp != self._stamp:
                self._offset_ms = round(float(self.path.read_text().strip() or 0) * 1000)
                self._stamp = stamp
        except (OSError, ValueError):
            pass  # keep the last good offset while the file is being rewritten
        return self._offset_ms


_OFFSET = _OffsetFile(Path(os.environ[OFFSET_FILE_ENV])) if os.environ.get(OFFSET_FILE_ENV) else None


def wall_clock_ms() -> int:
    """The wall clock in unix milliseconds (shifted by the test hook when it is set)."""
    now = time.time_ns() // 1_000_000
    return now + _OFFSET.offset_ms() if _OFFSET is not None else now


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class ClockReading:
    """One look at the time: the wall clock, the floor carried forward to now, and the best time."""

    wall_ms: int
    floor_ms: int
    tolerance_ms: int = DEFAULT_TOLERANCE_MS

    @property
    def behind_ms(self) -> int:
        """How far the wall clock is behind the floor (0 when it is not)."""
        return max(0, self.floor_ms - self.wall_ms)

    @property
    def trusted(self) -> bool:
        return self.behind_ms <= self.tolerance_ms

    @property
    def best_ms(self) -> int:
        return max(self.wall_ms, self.floor_ms)


def describe_behind(behind_ms: int) -> str:
    """``"3 d 4 h"``, ``"12 min 5 s"``, ``"40 s"``: a human duration for status lines and alerts."""
    seconds = behind_ms // 1000
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "min"), (secs, "s")]
    shown = [f"{n} {unit}" for n, unit in parts if n][:2]
    return " ".join(shown) or f"{behind_ms} ms"


class TrustedClock:
    """The best time of this process; thread-safe (lanes, the MQTT thread and the chain sync read it).

    ``observe(ms)`` raises the floor (a store write, a chain block timestamp); the floor is carried
    forward on the monotonic clock, and follows the wall clock whenever that is ahead of it.
    """

    def __init__(self, floor_ms: int = BUILD_FLOOR_MS, *, wall: Millis = wall_clock_ms,
                 mono: Millis = monotonic_ms, tolerance_ms: int = DEFAULT_TOLERANCE_MS) -> None:
        self._wall = wall
        self._mono = mono
        self.tolerance_ms = tolerance_ms
        self._lock = threading.Lock()
        self._floor_ms = max(floor_ms, BUILD_FLOOR_MS)
        self._anchor_mono = mono()

    def observe(self, floor_ms: int) -> None:
        """A time known to have passed (never lowers the floor)."""
        with self._lock:
            if floor_ms > self._carried():
                self._floor_ms, self._anchor_mono = floor_ms, self._mono()

    def _carried(self) -> int:
        return self._floor_ms + (self._mono() - self._anchor_mono)

    def reading(self) -> ClockReading:
        with self._lock:
            wall, floor = self._wall(), self._carried()
            if wall >= floor:  # the wall clock is ahead: it becomes the floor
                self._floor_ms, self._anchor_mono = wall, self._mono()
                floor = wall
            return ClockReading(wall, floor, self.tolerance_ms)

    def now_ms(self) -> int:
        """The best time (unix ms): never behind the floor, never backwards."""
        return self.reading().best_ms


def parse_local_time(text: str | None, name: str) -> int | None:
    """Unix ms of an ISO 8601 date or date-time typed by a person (local time unless it carries an
    offset), as the gate log's searches and the access lists take it; None for None (a form's empty field
    is its caller's to map to None). ValueError names the input (``name``) and the allowed forms, for an
    empty text too: `--from ""` is no time. (Times on chain are UTC seconds:
    ``edge.chain.windows.parse_chain_time``.)"""
    if text is None:
        return None
    try:
        return int(datetime.fromisoformat(text.strip()).timestamp() * 1000)
    except (ValueError, OverflowError, OSError):  # not ISO 8601, or a year the platform cannot place
        raise ValueError(f"{name} {text!r} is not a time; allowed: ISO 8601 such as 2026-12-24 or "
                         "2026-12-24T18:00 (local time) or 2026-12-24T18:00+01:00") from None
