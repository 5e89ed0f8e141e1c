"""Evidence retention: the plate crops in ``<state_dir>/evidence`` are personal data and fill a disk, so
the daemon deletes them itself (``[evidence]`` in the config), at start and every ``PRUNE_EVERY_S``:
every file older than ``retention_days``, then the oldest until the rest fit in ``max_mb``.

:func:`files_to_delete` is the rule (pure); :func:`prune_evidence` applies it to a directory. The gate
event rows keep the crop's path and sha256: a row whose crop was deleted still says which one it was.
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

from edge.config import EvidenceConfig

log = logging.getLogger(__name__)
EVIDENCE_DIR = "evidence"
PRUNE_EVERY_S = 600.0
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
    """The daemon's retention: now and every ``PRUNE_EVERY_S`` until ``stop``, off the event loop; ``now``
    (seconds): the daemon's best time, which also dates the crops (``edge.daemon.camera``)."""
    while not stop.is_set():
        try:
            await asyncio.to_thread(prune_evidence, directory, config, now())
        except Exception:  # noqa: BLE001 - retention must never stop the gate
            log.exception("evidence retention failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PRUNE_EVERY_S)
