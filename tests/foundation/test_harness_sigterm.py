"""A harness (chaos, bench, demo) stopped with SIGTERM stops the processes it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HARNESS = """
import sys, time
from pathlib import Path
from edge.tools.proc import ManagedProcess, exit_on_sigterm
exit_on_sigterm()
with ManagedProcess([sys.executable, "-c", "import time; time.sleep(120)"], Path(sys.argv[1])) as child:
    print(child.pid, flush=True)
    time.sleep(120)
"""


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_sigterm_to_a_harness_stops_its_children(tmp_path: Path) -> None:
    harness = subprocess.Popen([sys.executable, "-c", HARNESS, str(tmp_path / "child.log")],
                               stdout=subprocess.PIPE, text=True)
    child = None
    try:
        assert harness.stdout is not None
        child = int(harness.stdout.readline())
        harness.send_signal(signal.SIGTERM)
        assert harness.wait(30) == 128 + signal.SIGTERM
        deadline = time.monotonic() + 10
        while not _gone(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(child), "the harness's child outlived it"
    finally:
        harness.kill()
        harness.wait(10)
        if child is not None and not _gone(child):
            os.killpg(child, signal.SIGKILL)  # the child leads its own process group
