"""The chain sync as the daemon runs it: its own thread (it owns its store connection), woken when a
pass is recorded, with its health for the status snapshot.

The service itself (both directions each round, fees, reorgs, its own loop of rounds with backoff:
:meth:`edge.chain.sync.SyncService.run`) is :class:`edge.chain.sync.SyncService`; this object only
starts it in a thread (retrying every 10 s while the key or the password cannot be loaded: the gates
keep running), wakes it when passes are recorded, keeps its health for the status, and stops it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from edge.config import Config

log = logging.getLogger(__name__)
START_RETRY_S = 10.0
BACKOFF_CAP_S = 30.0  # a gateway retries a failing node at least every 30 s


class ChainLink:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.health: dict[str, Any] = {"state": "starting" if cfg.chain.enabled else "off"}
        self.service: Any = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> ChainLink:
        if self.cfg.chain.enabled:
            self._thread = threading.Thread(target=self._run, name="chain-sync", daemon=True)
            self._thread.start()
        return self

    def wake(self) -> None:
        """Records wait in the outbox: sync now rather than at the next poll."""
        self._wake.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        service = self._started_service()
        if service is None:
            return
        self.service = service

        def report(ok: bool) -> None:
            self.health = {"state": "on" if ok else "retrying", **service.health().as_dict()}

        service.run(self._stop, wake=self._wake, on_round=report)
        service.store.close()

    def _started_service(self) -> Any:
        """The sync service (in this thread: it opens its own store), or None when stopped first."""
        from edge.chain.sync import SyncTuning, service_from_config

        while not self._stop.is_set():
            try:
                return service_from_config(self.cfg, SyncTuning(backoff_cap_s=BACKOFF_CAP_S))
            except Exception as exc:  # noqa: BLE001 - bad key/password: report, keep the gate running
                self.health = {"state": "error", "detail": f"cannot start: {exc}"}
                log.error("chain sync cannot start: %s", exc)
                self._stop.wait(START_RETRY_S)
        return None
