"""Prometheus metrics on a loopback port, rendered by ``prometheus_client``.

The daemon passes a callable returning the current samples (plain data: :class:`Sample` values and
:class:`HistogramSample` latency histograms); :func:`families` groups them into one metric family per
name (HELP, TYPE, then every sample of the family together: what a Prometheus parser needs) and
``prometheus_client`` writes the text format. Only ``GET /metrics`` is served; anything else is 404.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
# Open latencies of a lane (seconds): the gate's own pulse dominates above 1 s.
LATENCY_BUCKETS_S: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)


@dataclass(frozen=True)
class Sample:
    name: str
    value: float
    kind: str = "gauge"  # gauge | counter (a counter's name ends in _total)
    help: str = ""
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class LatencyHistogram:
    """Cumulative counts of observed latencies (seconds) per bucket upper bound, their sum and count."""

    buckets: tuple[float, ...] = LATENCY_BUCKETS_S
    counts: list[int] = field(default_factory=list)
    total_s: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = self.counts or [0] * len(self.buckets)

    def observe(self, seconds: float) -> None:
        for index, bound in enumerate(self.buckets):
            if seconds <= bound:
                self.counts[index] += 1
        self.total_s += seconds
        self.count += 1


@dataclass(frozen=True)
class HistogramSample:
    name: str
    histogram: LatencyHistogram
    help: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    kind: str = "histogram"


AnySample = Sample | HistogramSample


def families(samples: Iterable[AnySample]) -> list[Metric]:
    """One family per metric name, in order of first appearance; a family's label names are the union
    of its samples' (a missing label is empty). Invalid names and kinds mixing under one name raise."""
    grouped: dict[str, list[AnySample]] = {}
    for sample in samples:
        if not _NAME.fullmatch(sample.name):
            raise ValueError(f"metric name {sample.name!r} is invalid; allowed: [a-zA-Z_:][a-zA-Z0-9_:]*")
        grouped.setdefault(sample.name, []).append(sample)
    return [_family(name, group) for name, group in grouped.items()]


def _family(name: str, group: list[AnySample]) -> Metric:
    kinds = {s.kind for s in group}
    if len(kinds) != 1:
        raise ValueError(f"metric {name} has samples of kinds {sorted(kinds)}; one kind per name")
    kind, help_text = kinds.pop(), next((s.help for s in group if s.help), "")
    labels = sorted({key for s in group for key in s.labels})
    family: Any
    if kind == "counter":
        family = CounterMetricFamily(name.removesuffix("_total"), help_text, labels=labels)
    elif kind == "gauge":
        family = GaugeMetricFamily(name, help_text, labels=labels)
    elif kind == "histogram":
        family = HistogramMetricFamily(name, help_text, labels=labels)
    else:
        raise ValueError(f"metric {name}: kind {kind!r} unknown; allowed: gauge | counter | histogram")
    for sample in group:
        values = [str(sample.labels.get(key, "")) for key in labels]
        if isinstance(sample, HistogramSample):
            h = sample.histogram
            buckets = [(f"{bound:g}", float(n)) for bound, n in zip(h.buckets, h.counts, strict=True)]
            family.add_metric(values, buckets=[*buckets, ("+Inf", float(h.count))], sum_value=h.total_s)
        else:
            family.add_metric(values, float(sample.value))
    return family


class _Collector:
    def __init__(self, collect: Callable[[], Iterable[AnySample]]) -> None:
        self._collect = collect

    def collect(self) -> Iterator[Metric]:
        yield from families(self._collect())


def registry_of(collect: Callable[[], Iterable[AnySample]]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(collect))  # a duck-typed collector: collect() only
    return registry


def render(samples: Iterable[AnySample]) -> str:
    """The Prometheus text format of ``samples`` (as served)."""
    materialised = list(samples)
    return generate_latest(registry_of(lambda: materialised)).decode()


class MetricsServer:
    def __init__(self, host: str, port: int, collect: Callable[[], Iterable[AnySample]]) -> None:
        registry = registry_of(collect)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server interface
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404, "only /metrics is served")
                    return
                try:
                    body = generate_latest(registry)
                except Exception:  # noqa: BLE001 - a scrape must never take the daemon down
                    log.exception("metrics collection failed")
                    self.send_error(500, "collection failed")
                    return
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE_LATEST)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="metrics", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
