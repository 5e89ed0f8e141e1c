"""kill -9 of the uploader at random moments, 50 times: every record lands on chain exactly once.

The first cycles run the real entry point (``python -m edge.chain.sync --once``); the rest fork the
test process (web3 already imported) and run the same ``service_from_config(...).run_until_idle()``
in the child, so 50 SIGKILLs fit the suite's time budget. Either way the killed process is a separate
process with its own store connection and HTTP client, killed with SIGKILL at a random moment.
"""

from __future__ import annotations

import os
import random
import select
import signal
import sys
import time
from pathlib import Path

from sync_world import World, landed_denials, record_denied, store_path, write_config

from edge.chain.sync import chain_seq, service_from_config
from edge.config import load_config
from edge.store import Store
from edge.tools.anvil import Anvil
from edge.tools.proc import ManagedProcess

RECORDS = 1500
BATCH = 5
CYCLES = 50
REAL_PROCESS_CYCLES = 5


def _wait_ready(process: ManagedProcess, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and "sync ready" in log.read_text(errors="replace"):
            return
        if not process.alive():
            return  # finished (or failed: the final run reports it)
        time.sleep(0.01)
    raise AssertionError(f"sync did not start within {timeout}s:\n{process.log_tail()}")


def _kill_real_process(argv: list[str], log: Path, delay: float) -> None:
    process = ManagedProcess(argv, log).start()
    _wait_ready(process, log)
    time.sleep(delay)
    process.kill()
    assert process.proc is not None
    process.proc.wait(10)


def _kill_forked_uploader(config: Path, delay: float) -> None:
    """Fork an uploader and SIGKILL it ``delay`` seconds after it is ready to upload (counting from
    readiness, not from the fork, keeps the kills inside uploads on a loaded machine)."""
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 1
        try:
            os.close(ready_r)
            service = service_from_config(load_config(config))
            os.write(ready_w, b"1")
            service.run_until_idle()
            code = 0
        finally:
            os._exit(code)
    os.close(ready_w)
    readable, _, _ = select.select([ready_r], [], [], 60.0)
    if readable:
        os.read(ready_r, 1)
    os.close(ready_r)
    time.sleep(delay)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def _in_flight(path: Path) -> bool:
    with Store(path) as store:
        return store.counts().get("outbox.chain.in_flight", 0) > 0


def test_sigkill_during_uploads_fifty_times_lands_every_record_exactly_once(
        world: World, anvil: Anvil, tmp_path: Path) -> None:
    config = write_config(tmp_path, world, anvil.url, batch_size=BATCH)
    with Store(store_path(tmp_path)) as store:
        recorded = record_denied(store, RECORDS, world.now())
    argv = [sys.executable, "-m", "edge.chain.sync", "--config", str(config), "--once"]
    rng = random.Random(20261125)
    killed_mid_batch = 0
    for cycle in range(CYCLES):
        if cycle < REAL_PROCESS_CYCLES:
            _kill_real_process(argv, tmp_path / f"sync-{cycle}.log", rng.uniform(0.0, 0.3))
        else:
            _kill_forked_uploader(config, rng.uniform(0.05, 0.3))
        killed_mid_batch += _in_flight(store_path(tmp_path))

    with ManagedProcess(argv, tmp_path / "sync-final.log") as final:
        # 1,500 records in batches of 5: ~300 transactions; generous for a 2-core box shared by other jobs
        assert final.proc is not None and final.proc.wait(300) == 0, final.log_tail()

    landed = landed_denials(world.w3, world.admin, world.deploy_block)
    with Store(store_path(tmp_path)) as store:
        expected = [chain_seq(store, e) for e in recorded]
        assert len(landed) == RECORDS and sorted(landed) == sorted(expected)  # each exactly once
        assert store.counts().get("outbox.chain.done") == RECORDS
        open_txs = store.conn.execute("SELECT count(*) FROM chain_txs WHERE status = 'pending'").fetchone()[0]
        assert open_txs == 0
    assert killed_mid_batch >= 3, f"only {killed_mid_batch} of {CYCLES} kills hit a batch in flight"
