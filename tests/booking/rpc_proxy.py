"""A JSON-RPC proxy on 127.0.0.1 in front of the test's anvil that behaves as hosted RPC providers do: it
refuses an eth_getLogs over more blocks than ``max_range``, and, when told to, refuses JSON-RPC batches
(with an HTTP status or with one error object for the whole batch). It forwards a batch (a JSON array) to
the node as one batch, and counts the HTTP requests (with the calls each carried), every call with its
method and parameters, and the eth_getLogs calls with their block ranges. A real HTTP server and a real
node: nothing of web3 is mocked.

``errors`` answers chosen eth_calls (by their call data) with an error object instead of the node's
answer, alone or inside a batch: the contract's views never revert, a provider's errors are what is
tested. ``poa_blocks`` gives every block the node answers with a proof-of-authority chain's extraData
(97 bytes: 32 of vanity and a 65-byte seal, as Clique chains and their forks carry), which anvil's do not."""

from __future__ import annotations

import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TAGS_AT_HEAD = frozenset({"latest", "pending", "safe", "finalized"})
REFUSED_BATCH = {"code": -32600, "message": "batch requests are not supported"}
POA_EXTRA_DATA = "0x" + "d8" * 32 + "5e" * 65
BLOCK_METHODS = frozenset({"eth_getBlockByNumber", "eth_getBlockByHash"})


class RangeLimitedRpc:
    """Start with ``with RangeLimitedRpc(anvil.url) as proxy:``; the server and its thread end on exit."""

    def __init__(self, upstream: str, max_range: int = 50) -> None:
        self.upstream = upstream
        self.max_range = max_range
        # An HTTP status to answer every batch with, unforwarded; 200: one JSON-RPC error object (id null).
        self.refuse_batches: int | None = None
        self.errors: dict[str, dict[str, Any]] = {}  # eth_call data (0x hex) -> the error it is answered with
        self.poa_blocks = False  # blocks answered with a POA chain's 97-byte extraData
        self.ranges: list[tuple[int, int]] = []  # every eth_getLogs asked, refused ones too
        self.calls: list[tuple[str, list[Any]]] = []  # every call web3 made: method and params
        self.requests: list[int] = []  # every HTTP request: how many calls it carried (a batch: > 1)
        self.refused: list[int] = []  # every batch refused: how many calls it carried
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = False  # server_close joins the request threads: none is left
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       name="rpc-proxy")

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

    def take_requests(self) -> list[int]:
        """The HTTP requests since the last call: the number of calls each carried."""
        with self._lock:
            taken, self.requests = self.requests, []
        return taken

    def handle(self, request: Any) -> tuple[int, Any]:
        """One HTTP request's body -> (HTTP status, JSON answer)."""
        batch = isinstance(request, list)
        with self._lock:
            self.requests.append(len(request) if batch else 1)
            if batch and self.refuse_batches is not None:
                self.refused.append(len(request))
        if not batch:
            return 200, self.answer(request)
        if self.refuse_batches is not None:
            return self.refuse_batches, {"jsonrpc": "2.0", "id": None, "error": REFUSED_BATCH}
        return 200, self.answer_batch(request)

    def answer_batch(self, requests: list[Any]) -> list[Any]:
        """Each call answered here (a refused range, an error set in ``errors``) or, all the others
        together, by the node in one batch."""
        answers = [self.local_answer(request) for request in requests]
        forwarded = [r for r, answer in zip(requests, answers, strict=True) if answer is None]
        from_node = iter(self.forward(forwarded) if forwarded else [])
        return [answer if answer is not None else next(from_node) for answer in answers]

    def answer(self, request: Any) -> Any:
        answer = self.local_answer(request)
        return answer if answer is not None else self.forward(request)

    def local_answer(self, request: Any) -> Any:
        """The error this proxy answers ``request`` with; None when the node answers it."""
        method, params = str(request.get("method")), list(request.get("params") or [])
        with self._lock:
            self.calls.append((method, params))
        error = None
        if method == "eth_call":
            error = self.errors.get(str(params[0].get("data") or params[0].get("input")))
        if method == "eth_getLogs":
            first, last = self._range(params[0])
            with self._lock:
                self.ranges.append((first, last))
            if last - first + 1 > self.max_range:
                error = {"code": -32005, "message": f"query exceeds max block range {self.max_range}"}
        return None if error is None else {"jsonrpc": "2.0", "id": request.get("id"), "error": error}

    def forward(self, request: Any) -> Any:
        """``request`` (one call or a batch) answered by the node; a batch's answers in its order."""
        upstream = urllib.request.Request(self.upstream, data=json.dumps(request).encode(),
                                          headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(upstream, timeout=30) as reply:  # noqa: S310 - the test's anvil
            answer = json.loads(reply.read())
        if isinstance(request, list):
            by_id = {a.get("id"): a for a in answer}
            return [self._as_poa(r, by_id[r.get("id")]) for r in request]
        return self._as_poa(request, answer)

    def _as_poa(self, request: Any, answer: Any) -> Any:
        block = answer.get("result") if request.get("method") in BLOCK_METHODS else None
        if self.poa_blocks and isinstance(block, dict):
            block["extraData"] = POA_EXTRA_DATA
        return answer

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
            status, answer = proxy.handle(request)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
            pass

    return Handler
