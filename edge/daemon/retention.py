"""Retention: evidence crops and the store's old rows.

Evidence: the plate crops in ``<state_dir>/evidence`` are personal data and fill a disk, so the daemon
deletes them itself (``[evidence]`` in the config), at start and every ``PRUNE_EVERY_S``: every file
older than ``retention_days``, then the oldest until the rest fit in ``max_mb``. :func:`files_to_delete`
is the rule (pure); :func:`prune_evidence` applies it to a directory. The gate event rows keep the crop's
path and sha256: a row whose crop was deleted still says which one it was.

Store: at start and every ``STORE_PRUNE_EVERY_S`` (daily) :func:`prune_store` deletes the rows older than
``[store] retention_days`` that can go without losing anything (``Store.prune``: delivered gate events and
outbox rows, manual-action audit rows), on its own connection in a worker thread.

Both judge age with the daemon's best time (``edge.clock``), never the bare wall clock: a Pi without a
real-time clock boots in 1970 or days behind, and that must neither keep nor delete anything early.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from edge.config import EvidenceConfig, StoreConfig
from edge.store import Store
from edge.store.store import PrunedRows

log = logging.getLogger(__name__)
EVIDENCE_DIR = "evidence"
PRUNE_EVERY_S = 600.0
STORE_PRUNE_EVERY_S = 86_400.0
STORE_PAUSE_S = 0.1  # between pruning transactions: a lane's write waiting for the lock gets it
DAY_S = 86_400


@dataclass(frozen=True)
class EvidenceFile:
    path: Path
    mtime: float  # unix seconds (file time: the daemon's best time when the crop was saved)
    size: int


@dataclass(frozen=True)
class Pruned:
    deleted: int
    freed_bytes: int
    kept: int
    kept_bytes: int


def evidence_dir(state_dir: Path) -> Path:
    """The one evidence directory (the tmpfiles rule in systemd/ creates the same one)."""
    return state_dir / EVIDENCE_DIR


def make_private(directory: Path) -> None:
    """Create the evidence directory 0700, or tighten one an older version left 0755. A failure is
    logged, never raised: evidence must not stop the gates (each crop that cannot be saved logs too)."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if directory.stat().st_mode & 0o077:
            directory.chmod(0o700)
    except OSError as exc:
        log.warning("evidence directory %s could not be created or made private (0700): %s", directory, exc)


def files_to_delete(files: Iterable[EvidenceFile], now: float, config: EvidenceConfig) -> list[EvidenceFile]:
    """Files older than the retention, then the oldest of the rest until they fit in ``max_mb``.

    A file dated in the future (a clock that was ahead when it was written) counts as new: age alone
    never deletes it, the size bound still does."""
    oldest_first = sorted(files, key=lambda f: f.mtime)
    cutoff = now - config.retention_days * DAY_S
    expired = [f for f in oldest_first if f.mtime < cutoff]
    kept = [f for f in oldest_first if f.mtime >= cutoff]
    excess = sum(f.size for f in kept) - config.max_mb * 1024 * 1024
    over: list[EvidenceFile] = []
    for f in kept:
        if excess <= 0:
            break
        over.append(f)
        excess -= f.size
    return expired + over


def _listing(directory: Path) -> list[EvidenceFile]:
    files = []
    with os.scandir(directory) as entries:
        for entry in entries:
            try:
                if entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    files.append(EvidenceFile(Path(entry.path), st.st_mtime, st.st_size))
            except OSError:
                continue  # deleted meanwhile
    return files


def prune_evidence(directory: Path, config: EvidenceConfig, now: float) -> Pruned:
    """Apply :func:`files_to_delete` to ``directory`` (missing: nothing to do); errors are logged."""
    try:
        files = _listing(directory)
    except FileNotFoundError:
        return Pruned(0, 0, 0, 0)
    doomed = files_to_delete(files, now, config)
    deleted = freed = 0
    for f in doomed:
        try:
            f.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("evidence %s not deleted: %s", f.path, exc)
            continue
        deleted += 1
        freed += f.size
    kept = len(files) - deleted
    if deleted:
        log.info("evidence retention: deleted %d file(s), %d bytes; %d kept", deleted, freed, kept)
    return Pruned(deleted, freed, kept, sum(f.size for f in files) - freed)


async def prune_loop(directory: Path, config: EvidenceConfig, stop: asyncio.Event,
                     now: Callable[[], float] = time.time) -> None:
    """The daemon's evidence retention: now and every ``PRUNE_EVERY_S`` until ``stop``; ``now`` (seconds):
    the daemon's best time, which also dates the crops (``edge.daemon.camera``)."""
    await _every(PRUNE_EVERY_S, "evidence", stop, lambda: prune_evidence(directory, config, now()))


def prune_store(path: Path, config: StoreConfig, now_ms: int, pause_s: float = STORE_PAUSE_S,
                stopped: Callable[[], bool] = lambda: False) -> PrunedRows:
    """One run of the store retention on a connection of this thread's own, logged."""
    with Store(path, busy_timeout_ms=config.busy_timeout_ms) as store:
        pruned = store.prune(config.cutoff_ms(now_ms), pause_s=pause_s, stopped=stopped)
    log.info("store retention (%d days): deleted %s; %d older gate event(s) kept (undelivered, a vehicle "
             "inside or a booking not settled)", config.retention_days, pruned.summary(), pruned.kept)
    return pruned


async def store_prune_loop(path: Path, config: StoreConfig, stop: asyncio.Event,
                           now_ms: Callable[[], int]) -> None:
    """The daemon's store retention: now and every ``STORE_PRUNE_EVERY_S`` until ``stop``; ``now_ms``:
    the daemon's best time. A stop ends a run after its current batch."""
    await _every(STORE_PRUNE_EVERY_S, "store", stop,
                 lambda: prune_store(path, config, now_ms(), stopped=stop.is_set))


async def _every(period_s: float, what: str, stop: asyncio.Event, job: Callable[[], object]) -> None:
    """``job`` now and every ``period_s`` until ``stop``, off the event loop; a failure is logged."""
    while not stop.is_set():
        try:
            await asyncio.to_thread(job)
        except Exception:  # noqa: BLE001 - retention must never stop the gate
            log.exception("%s retention failed", what)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), period_s)
