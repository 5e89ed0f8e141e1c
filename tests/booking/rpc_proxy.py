"""A JSON-RPC proxy on 127.0.0.1 in front of the test's anvil that refuses an eth_getLogs over more blocks
than ``max_range``, as hosted RPC providers do, and counts the eth_getLogs calls with their block ranges
and every call with its method and parameters (a real HTTP server and a real node: nothing of web3 is
mocked)."""

from __future__ import annotations

import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TAGS_AT_HEAD = frozenset({"latest", "pending", "safe", "finalized"})


class RangeLimitedRpc:
    """Start with ``with RangeLimitedRpc(anvil.url) as proxy:``; the server and its thread end on exit."""

    def __init__(self, upstream: str, max_range: int = 50) -> None:
        self.upstream = upstream
        self.max_range = max_range
        self.ranges: list[tuple[int, int]] = []  # every eth_getLogs asked, refused ones too
        self.calls: list[tuple[str, list[Any]]] = []  # every call web3 made: method and params
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = False  # server_close joins the request threads: none is left
        self.thread = threading.Thread(target=self.server.serve_forever, name="rpc-proxy")

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> RangeLimitedRpc:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()

    def take_ranges(self) -> list[tuple[int, int]]:
        """The eth_getLogs ranges asked since the last call."""
        with self._lock:
            taken, self.ranges = self.ranges, []
        return taken

    def take_calls(self) -> list[tuple[str, list[Any]]]:
        """The calls (method, params) asked since the last call."""
        with self._lock:
            taken, self.calls = self.calls, []
        return taken

    def answer(self, request: Any) -> Any:
        if isinstance(request, list):
            return [self.answer(item) for item in request]
        with self._lock:
            self.calls.append((str(request.get("method")), list(request.get("params") or [])))
        if request.get("method") == "eth_getLogs":
            first, last = self._range(request["params"][0])
            with self._lock:
                self.ranges.append((first, last))
            if last - first + 1 > self.max_range:
                error = {"code": -32005, "message": f"query exceeds max block range {self.max_range}"}
                return {"jsonrpc": "2.0", "id": request.get("id"), "error": error}
        return self.forward(request)

    def forward(self, request: Any) -> Any:
        upstream = urllib.request.Request(self.upstream, data=json.dumps(request).encode(),
                                          headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(upstream, timeout=30) as reply:  # noqa: S310 - the test's anvil
            return json.loads(reply.read())

    def _range(self, params: dict[str, Any]) -> tuple[int, int]:
        return self._block(params.get("fromBlock", "latest")), self._block(params.get("toBlock", "latest"))

    def _block(self, tag: str) -> int:
        if tag == "earliest":
            return 0
        if tag in TAGS_AT_HEAD:
            return int(self.forward({"jsonrpc": "2.0", "id": 0, "method": "eth_blockNumber"})["result"], 16)
        return int(tag, 16)


def _handler(proxy: RangeLimitedRpc) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):  # HTTP/1.0: one request per connection, none kept open
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            data = json.dumps(proxy.answer(request)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
            pass

    return Handler
