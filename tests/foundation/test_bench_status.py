"""`make bench` reads the daemon's status file, which is rewritten every second: a figure read right after
the last car must wait for the file to count that car (a pass's source is counted when the pass ends)."""

import json
import threading
import time
from pathlib import Path

from edge.tools.bench import settled_lane


def _write(path: Path, latencies: int, approach: int) -> None:
    lane = {"open_latencies_ms": [5.0] * latencies, "read_from": {"approach": approach, "burst": 0}}
    part = path.with_suffix(".part")
    part.write_text(json.dumps({"lanes": [lane]}))
    part.replace(path)  # as the daemon writes it: whole or not at all


def _all_counted(lane: dict) -> bool:
    return len(lane["open_latencies_ms"]) >= 3 and sum(lane["read_from"].values()) >= 3


def test_the_lane_is_read_once_the_file_counts_every_pass(tmp_path):
    status = tmp_path / "status.json"
    _write(status, latencies=3, approach=2)  # the last car's gate opened; its pass has not ended yet
    later = threading.Timer(0.3, _write, (status, 3, 3))
    later.start()
    try:
        lane = settled_lane(status, _all_counted, wait_s=5.0)
    finally:
        later.join()
    assert lane["read_from"]["approach"] == 3


def test_a_file_that_never_counts_them_is_read_when_the_wait_runs_out(tmp_path):
    status = tmp_path / "status.json"
    _write(status, latencies=3, approach=2)
    started = time.monotonic()
    lane = settled_lane(status, _all_counted, wait_s=0.4)
    assert lane["read_from"]["approach"] == 2
    assert time.monotonic() - started >= 0.4
