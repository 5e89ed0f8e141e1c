"""The outside world of a running daemon, for the demo, the end-to-end tests, bench and chaos.

- a camera per lane: a recording manifest (``edge.daemon.camera``) the harness rewrites as vehicles
  come into view and leave (frames rendered with ``edge.vision.synth``); the daemon reads whatever
  is in view (it is never told who comes);
- the gate emulator on a pty per lane (``edge.tools.emulator``), whose loops the harness drives
  as a vehicle would: presence loop on, and when the gate opens, over the safety loop and away;
- the daemon as a child process (``python -m edge.cli run --config FILE``) and its config file;
- reading back what the daemon recorded (its SQLite store, opened read-only in WAL mode).
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.tools.emulator.launch import EmulatorHandle, GateView
from edge.tools.proc import ManagedProcess, wait_until
from edge.vision import synth

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
    window: tuple[float, float] = (0.0, 0.0)  # wall-clock seconds: from before the loop to the decision

    @property
    def main_row(self) -> dict[str, Any] | None:
        return self.rows[-1] if self.rows else None

    @property
    def held(self) -> bool:
        row = self.main_row
        return (not self.error and row is not None and self.opened == self.visit.expect_open
                and self.visit.expect_reason in row["reason"])


# -- cameras --------------------------------------------------------------------------------------

def _empty_driveway(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    top, bottom = rng.integers(70, 200, 3), rng.integers(40, 140, 3)
    ramp = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    return ((top * (1 - ramp) + bottom * ramp) * np.ones((1, width, 1), np.float32)).astype(np.uint8)


def vehicle_frames(vehicle: Vehicle, directory: Path, count: int = DISTINCT_FRAMES,
                   size: tuple[int, int] = FRAME_SIZE, take: int = 0,
                   plate_frac: tuple[float, float] | None = None) -> list[str]:
    """The vehicle's frames as JPEG files in ``directory`` (rendered once, then reused). ``take`` > 0
    renders it again somewhere else in the picture (a driver who backed up and came again);
    ``plate_frac`` sets the plate width range as a fraction of the frame width."""
    names = [f"{vehicle.name}-t{take}-{i}.jpg" for i in range(count)]
    if all((directory / n).exists() for n in names):
        return names
    directory.mkdir(parents=True, exist_ok=True)
    seed = vehicle.seed + 7919 * take
    if plate_frac is None:
        images = synth.render_pass(vehicle.plate, count, vehicle.style, seed, size)
    else:
        widths = np.linspace(plate_frac[0], plate_frac[1], count) * size[0]
        images = [synth.render_frame(vehicle.plate, vehicle.style, np.random.default_rng(seed * 1000 + i),
                                     size, float(w))[0] for i, w in enumerate(widths)]
    for name, image in zip(names, images, strict=True):
        tmp = directory / f".{name}.tmp.jpg"
        cv2.imwrite(str(tmp), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        os.replace(tmp, directory / name)
    return names


APPROACH_FRAMES = 20  # a car drives up over 2 s at the lane camera's 10 fps
APPROACH_SETTLE_S = 0.2  # from the car's last approach frame to its wheels on the presence loop
HOLD_S = 60  # then stands at the barrier (its last frame repeated) this long before the recording loops


def approach_frames(vehicle: Vehicle, directory: Path, background: np.ndarray | None,
                    count: int = APPROACH_FRAMES, size: tuple[int, int] = FRAME_SIZE, take: int = 0,
                    away: bool = False) -> list[str]:
    """The vehicle driving up to the barrier on ``background`` (``synth.render_approach``) as JPEG files in
    ``directory``, rendered once; ``away``: it comes half way and turns off out of the picture instead."""
    kind = "away" if away else "approach"
    names = [f"{vehicle.name}-{kind}{take}-{i:02d}.jpg" for i in range(count)]
    if all((directory / n).exists() for n in names):
        return names
    directory.mkdir(parents=True, exist_ok=True)
    seed = vehicle.seed + 7919 * take
    plate_frac, centre = ((0.07, 0.11), (0.5, 1.4)) if away else ((0.07, 0.2), (0.5, 0.5))
    images = synth.render_approach(vehicle.plate, count, vehicle.style, seed, size, plate_frac, centre,
                                   background)
    for name, image in zip(names, images, strict=True):
        tmp = directory / f".{name}.tmp.jpg"
        cv2.imwrite(str(tmp), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        os.replace(tmp, directory / name)
    return names


class LaneCamera:
    """What one lane's camera sees: an empty driveway, or a vehicle (the manifest the daemon plays)."""

    def __init__(self, directory: Path, lane: str, fps: int = 10, frames: int = DISTINCT_FRAMES,
                 size: tuple[int, int] = FRAME_SIZE, plate_frac: tuple[float, float] | None = None) -> None:
        self.directory = directory
        self.manifest = directory / f"{lane}.json"
        self.fps, self.frames, self.size, self.plate_frac = fps, frames, size, plate_frac
        directory.mkdir(parents=True, exist_ok=True)
        if not (directory / "empty.jpg").exists():
            cv2.imwrite(str(directory / "empty.jpg"), _empty_driveway(np.random.default_rng(7), size))
        self.show(None)

    def show(self, vehicle: Vehicle | None, take: int = 0) -> None:
        frames = (vehicle_frames(vehicle, self.directory, self.frames, self.size, take, self.plate_frac)
                  if vehicle else ["empty.jpg"])
        tmp = self.manifest.with_suffix(".tmp")
        tmp.write_text(json.dumps({"fps": self.fps, "start_epoch": time.time(), "frames": frames}))
        os.replace(tmp, self.manifest)

    def play(self, frames: Sequence[str], hold: str | None = None, hold_s: float = HOLD_S) -> float:
        """Play ``frames`` once from now, then ``hold`` (default: the last frame) for ``hold_s``; returns
        how long the frames take at the camera's rate."""
        names = [*frames, *[hold or frames[-1]] * round(hold_s * self.fps)]
        tmp = self.manifest.with_suffix(".tmp")
        tmp.write_text(json.dumps({"fps": self.fps, "start_epoch": time.time(), "frames": names}))
        os.replace(tmp, self.manifest)
        return len(frames) / self.fps

    def approach(self, vehicle: Vehicle, take: int = 0, away: bool = False) -> float:
        """The vehicle drives up to the barrier and stands there (``away``: it turns off and the
        driveway is empty again); returns how long the drive takes."""
        return self.play(self.approach_names(vehicle, take, away), "empty.jpg" if away else None)

    def approach_names(self, vehicle: Vehicle, take: int = 0, away: bool = False) -> list[str]:
        """The frames of ``vehicle`` driving up (or turning away) on this camera's driveway (``play``)."""
        background = cv2.imread(str(self.directory / "empty.jpg"), cv2.IMREAD_COLOR)
        return approach_frames(vehicle, self.directory, background, APPROACH_FRAMES, self.size, take, away)


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


def start_daemon(config: Path, log: Path, timeout: float = 90.0, env: dict[str, str] | None = None,
                 parkgate: Sequence[str] = (sys.executable, "-m", "edge.cli"), cwd: Path | None = None
                 ) -> ManagedProcess:
    """Start `parkgate run` and wait for its READY line; RuntimeError with the log tail otherwise.
    ``parkgate``: the command (default: this checkout's, through this interpreter)."""
    proc = ManagedProcess([*parkgate, "run", "--config", str(config)], log, env=env, cwd=cwd)
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


def daemon_status_behind(state_dir: Path, gateway: str, best_ms: int, behind_ms: int) -> None:
    """``status.json`` as a running daemon of this boot writes it each second while its wall clock is
    ``behind_ms`` behind its best time ``best_ms`` (the calling process stands in for the daemon: its pid)."""
    from edge.clock import DEFAULT_TOLERANCE_MS
    from edge.daemon.status import StatusSnapshot, boot_id, status_path, write_status

    write_status(status_path(state_dir), StatusSnapshot(
        gateway=gateway, pid=os.getpid(), state="running", updated_at=time.time(), uptime_s=60.0,
        heartbeat_mono=time.monotonic(), boot_id=boot_id(),
        clock={"wall_ms": best_ms - behind_ms, "best_ms": best_ms, "behind_ms": behind_ms,
               "trusted": behind_ms <= DEFAULT_TOLERANCE_MS}))


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


def cached_bookings(store_path: Path) -> int:
    """How many bookings the daemon has cached from the chain; 0 while the store or its schema is missing."""
    try:
        conn = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=5)
        try:
            return int(conn.execute("SELECT count(*) FROM bookings").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def outbox_counts(store_path: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=5)
    try:
        return {f"{d}.{s}": n for d, s, n in conn.execute(
            "SELECT destination, status, count(*) FROM outbox GROUP BY destination, status")}
    finally:
        conn.close()


# -- driving a vehicle -----------------------------------------------------------------------------

def play_visit(visit: Visit, emulator: EmulatorHandle | GateView, camera: LaneCamera, store_path: Path,
               decide_timeout: float = 10.0, record_timeout: float = 10.0,
               pace_s: float = 0.3, take: int = 0, arrive: str = "shown") -> VisitResult:
    """The vehicle comes into view, rolls onto the presence loop, drives through if the gate opens
    (over the safety loop and away), or backs off if refused; returns what the daemon recorded.
    ``arrive``: "shown" (its frames, ``pace_s`` before the loop), "approach" (seen driving up,
    ``LaneCamera.approach``: it reaches the loop as it stops) or "in_view" (the camera shows whatever the
    caller played on it)."""
    seq = last_seq(store_path)
    started = time.time()
    # Open commands, not off->on transitions: a car granted while the previous car's pulse still holds
    # the barrier up drives through an open gate all the same.
    opens_before = emulator.state()["open_commands"]
    if arrive == "approach":
        time.sleep(camera.approach(visit.vehicle, take) + APPROACH_SETTLE_S)
    elif arrive != "in_view":
        camera.show(visit.vehicle, take)
        time.sleep(pace_s)  # in view before it reaches the loop
    armed = time.perf_counter()
    emulator.command("presence 1")
    rows: list[dict[str, Any]] = []

    def progress() -> bool:
        nonlocal rows
        rows = read_rows(store_path, seq, visit.lane)
        return bool(rows) or emulator.state()["open_commands"] > opens_before

    wait_until(progress, decide_timeout)
    opened = emulator.state()["open_commands"] > opens_before
    window = (started, time.time())
    latency = time.perf_counter() - armed if opened else None
    if opened:
        emulator.command("safety 1")
        time.sleep(pace_s * 2 / 3)
        emulator.command("presence 0")
        camera.show(None)
        time.sleep(pace_s / 3)
        emulator.command("safety 0")
        rows = wait_until(lambda: read_rows(store_path, seq, visit.lane), record_timeout)
    else:
        emulator.command("presence 0")
        camera.show(None)
    if not rows:
        return VisitResult(visit, opened, [], latency, "no gate event recorded", window)
    return VisitResult(visit, opened, rows, latency, window=window)
