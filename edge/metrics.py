"""Prometheus text exposition on a loopback port (stdlib http.server, one daemon thread).

The daemon passes a callable returning the current samples; rendering is a pure function so it is
tested without a socket. Only ``GET /metrics`` is served; anything else is 404.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


@dataclass(frozen=True)
class Sample:
    name: str
    value: float
    kind: str = "gauge"  # gauge | counter
    help: str = ""
    labels: dict[str, str] = field(default_factory=dict)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(samples: Iterable[Sample]) -> str:
    """Prometheus text format 0.0.4; one HELP/TYPE per metric name, invalid names refused."""
    out: list[str] = []
    seen: set[str] = set()
    for s in samples:
        if not _NAME.fullmatch(s.name):
            raise ValueError(f"metric name {s.name!r} is invalid; allowed: [a-zA-Z_:][a-zA-Z0-9_:]*")
        if s.name not in seen:
            seen.add(s.name)
            if s.help:
                out.append(f"# HELP {s.name} {s.help}")
            out.append(f"# TYPE {s.name} {s.kind}")
        labels = ",".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(s.labels.items()))
        out.append(f"{s.name}{{{labels}}} {float(s.value):g}" if labels else f"{s.name} {float(s.value):g}")
    return "\n".join(out) + "\n"


class MetricsServer:
    def __init__(self, host: str, port: int, collect: Callable[[], Iterable[Sample]]) -> None:
        collect_ = collect

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server interface
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404, "only /metrics is served")
                    return
                try:
                    body = render(collect_()).encode()
                except Exception:  # noqa: BLE001 - a scrape must never take the daemon down
                    log.exception("metrics collection failed")
                    self.send_error(500, "collection failed")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
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
