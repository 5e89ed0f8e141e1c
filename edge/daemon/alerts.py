"""The daemon's alerts: counted (status, metrics), logged and published on MQTT, each throttled per
code and lane so that a flood (forged serial frames, a flapping camera) floods neither the log nor the
broker; the counts in the status stay complete.

A *condition* is an alert that holds while something lasts (``clock_behind``, ``store_unwritable``):
raised once when it starts, its detail kept current for the status, cleared when it ends.
"""

from __future__ import annotations

import logging
from typing import Any

from edge.clock import TrustedClock
from edge.throttle import Throttle

log = logging.getLogger(__name__)


class Alerts:
    """``bridge`` (the MQTT bridge, once it started) gets ``<prefix>/<gateway>/alerts`` messages: at most
    3 at once and one per 10 s per code and lane."""

    def __init__(self, clock: TrustedClock) -> None:
        self.clock = clock
        self.bridge: Any = None
        self.counts: dict[str, int] = {}  # alerts raised, by code
        self.conditions: dict[str, str] = {}  # conditions holding now (code -> detail)
        self._out = Throttle(rate_per_s=0.1, burst=3)  # MQTT alert messages per code and lane
        self._logs = Throttle(rate_per_s=0.1, burst=10)  # alert log lines per code and lane

    def alert(self, lane: str, code: str, detail: str) -> None:
        """Count, log and publish one alert (``lane`` "-" for the whole gateway)."""
        self.counts[code] = self.counts.get(code, 0) + 1
        key = f"{code}/{lane}"
        if self._logs.allow(key):
            more = self._logs.take_refused(key)
            log.warning("alert %s on lane %s: %s%s", code, lane, detail,
                        f" ({more} more since the last line)" if more else "")
        if self.bridge is not None and self._out.allow(key):
            try:
                self.bridge.publish_alert({"code": code, "lane": lane, "detail": detail,
                                           "at_ms": self.clock.now_ms(),
                                           "suppressed": self._out.take_refused(key)})
            except Exception:  # noqa: BLE001 - the broker link must never stop a lane
                log.exception("MQTT alert publish failed")

    def condition(self, code: str, detail: str | None) -> None:
        """Raise ``code`` when it starts, keep its detail current, clear it when ``detail`` is None."""
        if detail is None:
            if self.conditions.pop(code, None) is not None:
                log.warning("alert %s cleared", code)
            return
        if code not in self.conditions:
            self.alert("-", code, detail)
        self.conditions[code] = detail
