"""A local anvil chain (from the npm package in contracts/node_modules) on a free loopback port.

Used by the tests, the gas report and the demo::

    with Anvil(AnvilConfig(state_path=tmp / "chain.json"), log_path=tmp / "anvil.log") as node:
        w3 = node.web3()

With ``state_path`` the chain is loaded from that file at start (when it exists) and dumped to it when
anvil stops on SIGTERM, so a test can stop and restart the chain and keep its state.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from edge.chain.build import NODE_MODULES
from edge.chain.sync import client
from edge.tools.net import free_tcp_port, wait_for_tcp
from edge.tools.proc import ManagedProcess

# anvil's well-known development mnemonic: its accounts are public, for local chains only.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
LOOPBACK = "127.0.0.1"


class AnvilError(RuntimeError):
    """anvil is missing, did not start, or stopped answering."""


@dataclass(frozen=True)
class AnvilConfig:
    chain_id: int = 31337
    block_time: float | None = None  # None: automine (one block per transaction)
    state_path: Path | None = None  # load at start if present, dump at stop
    accounts: int = 10
    balance_eth: int = 10_000
    port: int | None = None  # None: a free loopback port
    hardfork: str = "cancun"
    extra_args: tuple[str, ...] = field(default=())


def anvil_binary(node_modules: Path = NODE_MODULES) -> Path:
    """The native anvil binary shipped by @foundry-rs/anvil (its platform package), else the npm shim."""
    for candidate in sorted(node_modules.glob("@foundry-rs/anvil-*/bin/anvil")):
        if candidate.is_file():
            return candidate
    shim = node_modules / ".bin" / "anvil"
    if shim.exists():
        return shim
    raise AnvilError(f"anvil not found under {node_modules}: run `make test` (or `npm ci` in contracts/)")


def anvil_argv(binary: Path, config: AnvilConfig, port: int) -> list[str]:
    argv = [str(binary), "--host", LOOPBACK, "--port", str(port), "--chain-id", str(config.chain_id),
            "--accounts", str(config.accounts), "--balance", str(config.balance_eth),
            "--mnemonic", DEV_MNEMONIC, "--hardfork", config.hardfork]
    if config.block_time is not None:
        argv += ["--block-time", f"{config.block_time:g}"]
    if config.state_path is not None:
        argv += ["--state", str(config.state_path)]
    return argv + list(config.extra_args)


def rpc_call(url: str, method: str, params: list | None = None, timeout: float = 5.0) -> object:
    """One raw JSON-RPC call (used to probe readiness without web3's retry machinery)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answer = json.loads(response.read())
    if "error" in answer:
        raise AnvilError(f"{method} failed: {answer['error']}")
    return answer.get("result")


def dev_account(index: int) -> LocalAccount:
    """Private-key account ``index`` of the dev mnemonic (the same keys anvil funds and unlocks)."""
    Account.enable_unaudited_hdwallet_features()
    return Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


class Anvil:
    """A running anvil child process. Context manager: started on enter, stopped (state dumped) on exit."""

    def __init__(self, config: AnvilConfig | None = None, log_path: Path | None = None,
                 start_timeout: float = 30.0) -> None:
        self.config = config or AnvilConfig()
        self.log_path = Path(log_path) if log_path else Path("/tmp") / f"parkgate-anvil-{time.time_ns()}.log"
        self.start_timeout = start_timeout
        self.port = 0
        self._process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> Anvil:
        """Start and wait for JSON-RPC. A free port picked here can be taken by another process before
        anvil binds it; that start is retried on a new port (twice), a fixed ``config.port`` is not."""
        binary = anvil_binary()
        attempts = 1 if self.config.port else 3
        for attempt in range(1, attempts + 1):
            self.port = self.config.port or free_tcp_port(LOOPBACK)
            self._process = ManagedProcess(anvil_argv(binary, self.config, self.port), self.log_path).start()
            try:
                self._wait_ready()
                return self
            except AnvilError:
                self.stop()
                if attempt == attempts or "in use" not in self._process.log_tail().lower():
                    raise
            except Exception:
                self.stop()
                raise
        raise AssertionError("unreachable")

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if not self._process.alive():
                raise AnvilError(f"anvil exited at start (log {self.log_path}):\n{self._process.log_tail()}")
            try:
                wait_for_tcp(LOOPBACK, self.port, timeout=0.5)
                chain_id = int(str(rpc_call(self.url, "eth_chainId", timeout=2.0)), 16)
            except (TimeoutError, OSError, urllib.error.URLError, AnvilError):
                continue
            if chain_id != self.config.chain_id:
                raise AnvilError(f"port {self.port} answers chain id {chain_id}, not {self.config.chain_id}")
            return
        raise AnvilError(f"anvil did not answer JSON-RPC within {self.start_timeout:.0f}s "
                         f"(log {self.log_path}):\n{self._process.log_tail()}")

    def alive(self) -> bool:
        return self._process is not None and self._process.alive()

    def stop(self) -> None:
        """SIGTERM (anvil dumps ``state_path`` then), SIGKILL after a timeout."""
        if self._process is not None:
            self._process.stop(timeout=10.0)

    def kill(self) -> None:
        """Hard kill, no state dump: simulates a crash of the chain node."""
        if self._process is not None:
            self._process.kill()
            if self._process.proc is not None:
                self._process.proc.wait(5)

    def web3(self, timeout: float = 30.0) -> Web3:
        """A client of this node configured as the product's (``edge.chain.sync.client``)."""
        return client(Web3.HTTPProvider(self.url, request_kwargs={"timeout": timeout}))

    def rpc(self, method: str, params: list | None = None) -> object:
        return rpc_call(self.url, method, params)

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
