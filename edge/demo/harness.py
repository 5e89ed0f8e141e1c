"""The outside world of a running daemon, for the demo, the end-to-end tests, bench and chaos.

- camera *recordings* of the vehicles (rendered with ``edge.vision.synth``), one per lane, anchored
  to the wall clock: during visit k's slot the lane's camera shows that vehicle, otherwise an empty
  driveway; the daemon reads whatever is in view (it is never told who comes);
- the gate emulator on a pty per lane (``firmware_bridge.emulator``), whose loops the harness drives
  as a vehicle would: presence loop on, and when the gate opens, over the safety loop and away;
- the daemon as a child process (``python -m edge.cli run --config FILE``) and its config file;
- reading back what the daemon recorded (its SQLite store, opened read-only in WAL mode).
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.support.proc import ManagedProcess
from edge.vision import synth
from firmware_bridge.emulator.launch import EmulatorHandle

FRAME_SIZE = (960, 540)
DISTINCT_FRAMES = 4


@dataclass(frozen=True)
class Vehicle:
    name: str
    plate: str
    style: str = "eu"
    seed: int = 0


@dataclass(frozen=True)
class Visit:
    """One vehicle at one lane, and what must happen."""

    vehicle: Vehicle
    lane: str
    expect_open: bool
    expect_reason: str  # a substring of the recorded reason, e.g. "booking_valid", "no_booking"
    note: str = ""


@dataclass
class VisitResult:
    visit: Visit
    opened: bool
    rows: list[dict[str, Any]] = field(default_factory=list)
    open_latency_s: float | None = None
    error: str = ""

    @property
    def main_row(self) -> dict[str, Any] | None:
        return self.rows[-1] if self.rows else None

    @property
    def held(self) -> bool:
        row = self.main_row
        return (not self.error and row is not None and self.opened == self.visit.expect_open
                and self.visit.expect_reason in row["reason"])


# -- camera recordings -----------------------------------------------------------------------------

def _empty_driveway(rng: np.random.Generator) -> np.ndarray:
    width, height = FRAME_SIZE
    top, bottom = rng.integers(70, 200, 3), rng.integers(40, 140, 3)
    ramp = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    return ((top * (1 - ramp) + bottom * ramp) * np.ones((1, width, 1), np.float32)).astype(np.uint8)


def _vehicle_frames(vehicle: Vehicle, directory: Path) -> list[str]:
    names = []
    for i, image in enumerate(synth.render_pass(vehicle.plate, DISTINCT_FRAMES, vehicle.style, vehicle.seed,
                                                FRAME_SIZE)):
        name = f"{vehicle.name}-{i}.jpg"
        cv2.imwrite(str(directory / name), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        names.append(name)
    return names


def write_recordings(directory: Path, visits: Sequence[Visit], lanes: Sequence[str], slot_s: float,
                     start_epoch: float, fps: int = 10) -> dict[str, Path]:
    """One manifest per lane: slot k shows visit k's vehicle at its lane, an empty driveway elsewhere."""
    directory.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(directory / "empty.jpg"), _empty_driveway(np.random.default_rng(7)))
    rendered: dict[str, list[str]] = {}
    per_slot = max(1, int(round(slot_s * fps)))
    manifests = {}
    for lane in lanes:
        frames: list[str] = []
        for visit in visits:
            if visit.lane != lane:
                frames += ["empty.jpg"] * per_slot
                continue
            if visit.vehicle.name not in rendered:
                rendered[visit.vehicle.name] = _vehicle_frames(visit.vehicle, directory)
            names = rendered[visit.vehicle.name]
            frames += [names[i % len(names)] for i in range(per_slot)]
        path = directory / f"{lane}.json"
        path.write_text(json.dumps({"fps": fps, "start_epoch": start_epoch, "frames": frames}))
        manifests[lane] = path
    return manifests


def slot_start(start_epoch: float, slot_s: float, slots: int, index: int, not_before: float) -> float:
    """The next time slot ``index`` begins at or after ``not_before`` (the recording loops)."""
    period = slot_s * slots
    first = start_epoch + index * slot_s
    if first >= not_before:
        return first
    loops = int((not_before - first) // period) + 1
    return first + loops * period


# -- config and daemon -----------------------------------------------------------------------------

def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def _table(name: str, values: dict[str, Any]) -> list[str]:
    """``[name]`` with its scalar keys, then its sub-tables."""
    out = [f"[{name}]"] + [f"{k} = {_toml_value(v)}" for k, v in values.items() if not isinstance(v, dict)]
    for key, sub in values.items():
        if isinstance(sub, dict):
            out += _table(f"{name}.{key}", sub)
    return out


def toml_text(sections: dict[str, dict[str, Any]], lanes: Sequence[dict[str, Any]]) -> str:
    """A config file from plain dicts (nested dicts become sub-tables); lanes are ``[[lanes]]``."""
    out = []
    for name, values in sections.items():
        out += [*_table(name, values), ""]
    for lane in lanes:
        out += ["[[lanes]]", *_table("lanes", lane)[1:], ""]
    return "\n".join(out)


def start_daemon(config: Path, log: Path, timeout: float = 90.0, env: dict[str, str] | None = None
                 ) -> ManagedProcess:
    """Start `parkgate run` and wait for its READY line; RuntimeError with the log tail otherwise."""
    proc = ManagedProcess([sys.executable, "-m", "edge.cli", "run", "--config", str(config)], log, env=env)
    proc.start()
    offset = log.stat().st_size if log.exists() else 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")[offset:] if log.exists() else ""
        if "READY pid=" in text:
            return proc
        if not proc.alive():
            break
        time.sleep(0.1)
    tail = proc.log_tail()
    proc.stop()
    raise RuntimeError(f"daemon did not become ready:\n{tail}")


# -- what the daemon recorded ----------------------------------------------------------------------

def read_rows(store_path: Path, after_seq: int = 0, lane: str | None = None) -> list[dict[str, Any]]:
    """Gate events after ``after_seq`` (read-only connection; WAL lets it run beside the daemon)."""
    conn = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=5)
    conn.row_factory = sqlite3.Row
    try:
        where = "seq > ?" + (" AND lane = ?" if lane else "")
        query = f"SELECT * FROM gate_events WHERE {where} ORDER BY seq"
        return [dict(r) for r in conn.execute(query, (after_seq, lane) if lane else (after_seq,))]
    except sqlite3.OperationalError:
        return []  # the daemon has not created the schema yet
    finally:
        conn.close()


def last_seq(store_path: Path) -> int:
    rows = read_rows(store_path)
    return rows[-1]["seq"] if rows else 0


def outbox_counts(store_path: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=5)
    try:
        return {f"{d}.{s}": n for d, s, n in conn.execute(
            "SELECT destination, status, count(*) FROM outbox GROUP BY destination, status")}
    finally:
        conn.close()


# -- driving a vehicle -----------------------------------------------------------------------------

def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            return value
        time.sleep(interval)


def play_visit(visit: Visit, emulator: EmulatorHandle, store_path: Path, at: float,
               decide_timeout: float = 8.0) -> VisitResult:
    """At ``at`` (epoch s) the vehicle rolls onto the presence loop; drive through if the gate opens."""
    time.sleep(max(0.0, at - time.time()))
    seq = last_seq(store_path)
    opens_before = emulator.state()["opens"]
    armed = time.perf_counter()
    emulator.command("presence 1")
    rows: list[dict[str, Any]] = []

    def progress() -> bool:
        nonlocal rows
        rows = read_rows(store_path, seq, visit.lane)
        return bool(rows) or emulator.state()["opens"] > opens_before

    wait_until(progress, decide_timeout)
    opened = emulator.state()["opens"] > opens_before
    latency = time.perf_counter() - armed if opened else None
    if opened:
        emulator.command("safety 1")
        time.sleep(0.3)
        emulator.command("presence 0")
        time.sleep(0.2)
        emulator.command("safety 0")
        rows = wait_until(lambda: read_rows(store_path, seq, visit.lane), decide_timeout)
    else:
        emulator.command("presence 0")
    if not rows:
        return VisitResult(visit, opened, [], latency, "no gate event recorded")
    return VisitResult(visit, opened, rows, latency)
