"""`parkgate doctor` checks of the daemon's lanes: every lane's port exists, is a terminal device and
is read/writable; its controller answers in the configured driver's protocol; its camera gives frames;
and of its clock: the wall clock is not behind the newest time the store has seen.

While the daemon runs it holds the ports exclusively: the doctor does not disturb it and reports the
daemon's own link state instead.
"""

from __future__ import annotations

import asyncio
import grp
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from edge.clock import BUILD_FLOOR_MS, ClockReading, describe_behind, wall_clock_ms
from edge.config import Config, GateConfig, relay_map_options
from edge.daemon.camera import MANIFEST_SUFFIX, load_recording, open_frame_source
from edge.daemon.status import read_status, status_path
from edge.doctor import (
    SERVICE_USER,
    CheckResult,
    register_check,
    service_access_problem,
    service_user,
)
from edge.store.integrity import stored_clock_floor
from edge.vision.camera import parse_source, redact_url
from edge.vision.reader import PlateReader
from edge.vision.types import MIN_PLATE_WIDTH_PX, PlateRead
from firmware_bridge.driver import connect_driver
from firmware_bridge.gate import GateStatus
from firmware_bridge.transport import PortBusy, port_problem

PORT_FIX = "plug in the gate controller or fix lanes[].gate.port"


@register_check("serial ports")
def check_serial_ports(config: Config) -> CheckResult:
    """Each lane's port exists and is a terminal device this user, and (run as root) the service user,
    may read and write."""
    ports = {lane.gate.port: lane.name for lane in config.lanes}
    problems = [f"lane {lane}: {problem}" for port, lane in ports.items() if (problem := port_problem(port))]
    if problems:
        return CheckResult.fail("; ".join(problems), PORT_FIX)
    denied = [(lane, port, problem) for port, lane in ports.items()
              if (problem := service_access_problem(Path(port), "rw"))]
    if denied:
        return CheckResult.fail("; ".join(f"lane {lane}: {problem}" for lane, _, problem in denied),
                                _fix_port_access(denied[0][1]))
    return CheckResult.ok(", ".join(f"{lane}={port}" for port, lane in ports.items()))


def _fix_port_access(port: str) -> str:
    """The fix for a port the service user may not open: its group's permission, the group, or the user."""
    user = service_user()
    try:
        gid = Path(port).stat().st_gid
        group = grp.getgrgid(gid).gr_name
    except (OSError, KeyError):
        return f"chgrp dialout {port}; chmod 0660 {port}"
    if user is not None and gid in user.groups:
        return f"chmod g+rw {port} (for good: a udev rule with MODE=\"0660\")"
    if group == "root":
        return (f"chgrp dialout {port}; chmod 0660 {port} (for good: a udev rule with GROUP=\"dialout\", "
                "MODE=\"0660\")")
    return f"usermod -aG {group} {SERVICE_USER} (or add {group} to the unit's SupplementaryGroups=)"


@register_check("clock")
def check_clock(config: Config) -> CheckResult:
    """The wall clock against the sanity floor (edge.clock): the build date and the store's floor. A store
    that cannot be read leaves only the build date, and the result says so (a WARN, not an OK claiming
    the store's time was checked)."""
    stored, unread = stored_clock_floor(config.store_path)
    tolerance_ms = config.clock.behind_tolerance_s * 1000
    reading = ClockReading(wall_clock_ms(), max(BUILD_FLOOR_MS, stored), tolerance_ms)
    wall = _utc(reading.wall_ms)
    if not reading.trusted:
        behind = describe_behind(reading.behind_ms)
        return CheckResult.fail(f"wall clock {wall} is {behind} behind the newest time this gateway has "
                                f"seen (untrusted_time = {config.clock.untrusted_time!r})",
                                "fix NTP (timedatectl status; systemctl status systemd-timesyncd)")
    if unread is not None:
        return CheckResult.warn(f"wall clock {wall}, not behind this build's date ({_utc(BUILD_FLOOR_MS)}); "
                                f"the newest time the store has seen could not be read ({unread})",
                                "the doctor's store check names what is wrong and how to recover it")
    return CheckResult.ok(f"wall clock {wall}, not behind the newest time this gateway has seen")


def _utc(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000))


# -- the controllers answer --------------------------------------------------------------------------

PROBE_TIMEOUT_S = 5.0
DRIVER_FIX = {
    "parkgate-serial": "check lanes[].gate.driver (a Modbus relay board is modbus-rtu), gate.baudrate (the "
                       "controller's setting) and the wiring (TX/RX crossed; RS-485 A/B)",
    "modbus-rtu": "check gate.modbus_unit (the board's address), gate.baudrate, lanes[].gate.driver (our "
                  "controller is parkgate-serial) and the RS-485 wiring (A/B, termination)",
}


def running_daemon(config: Config) -> dict[str, Any] | None:
    """The status snapshot of a daemon running with this config's state dir, or None."""
    try:
        snapshot = read_status(status_path(config.gateway.state_dir))
    except ValueError:
        return None
    return None if snapshot["stale"] else snapshot


async def _probe(gate: GateConfig) -> GateStatus:
    options: dict[str, int] = dict(relay_map_options(gate)) if gate.driver == "modbus-rtu" else {}
    driver = await connect_driver(gate.driver, gate.port, gate.baudrate, bus=None, **options)
    try:
        return await driver.status()
    finally:
        await driver.aclose()


def probe_gate(gate: GateConfig) -> str:
    """The controller's status in words; raises (GateError, OSError, TimeoutError) when it does not answer."""
    status = asyncio.run(asyncio.wait_for(_probe(gate), PROBE_TIMEOUT_S))
    position = getattr(status.position, "name", str(status.position)).lower()
    return (f"position {position}, presence {'on' if status.presence else 'off'}, safety "
            f"{'on' if status.safety else 'off'}")


@register_check("gate controllers")
def check_gate_controllers(config: Config) -> CheckResult:
    """Each lane's controller answers a status request in its configured driver's protocol. While the
    daemon runs it holds the ports, so its own link state (status.json) is reported instead."""
    daemon = running_daemon(config)
    if daemon is not None:
        links = {lane["name"]: lane.get("link_up") for lane in daemon.get("lanes", [])}
        down = [lane.name for lane in config.lanes if not links.get(lane.name)]
        held = f"ports held by the running daemon (pid {daemon.get('pid')})"
        if down:
            fix = "parkgate status names the lane's last error; " + DRIVER_FIX["parkgate-serial"]
            return CheckResult.fail(f"{held}; its link is DOWN on lane(s) {', '.join(down)}", fix)
        return CheckResult.ok(f"{held}; link up on {', '.join(links)}")
    answers, failures = [], []
    for lane in config.lanes:
        gate = lane.gate
        if port_problem(gate.port):
            failures.append((f"{lane.name}: {gate.driver} {gate.port}: see the serial ports check", PORT_FIX))
            continue
        try:
            answers.append(f"{lane.name}: {gate.driver} at {gate.baudrate} baud answered: {probe_gate(gate)}")
        except PortBusy as exc:
            failures.append((f"{lane.name}: {gate.driver} {gate.port}: {exc}", _fix_busy_port(gate.port)))
        except Exception as exc:  # noqa: BLE001 - timeout, protocol error: the lane's FAIL
            why = "no answer" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
            failures.append((f"{lane.name}: {gate.driver} {gate.port} at {gate.baudrate} baud: {why}",
                             DRIVER_FIX[gate.driver]))
    if failures:
        return CheckResult.fail("\n".join([why for why, _ in failures] + answers), failures[0][1])
    return CheckResult.ok("\n".join(answers))


def _fix_busy_port(port: str) -> str:
    return (f"stop the program that holds {port}: fuser -v {port} names it (a second parkgate with another "
            "state dir, minicom, screen, ModemManager?)")


# -- the cameras give frames -------------------------------------------------------------------------

CAMERA_TIMEOUT_S = 8.0
CAMERA_CONNECT_TIMEOUT_S = 3.0
DEFAULT_CAMERA_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}


def camera_problem(source: str) -> str | None:
    """Why ``source`` cannot give frames, found without opening it (a missing device or file)."""
    parsed = parse_source(source)
    if isinstance(parsed, int):
        device = Path(f"/dev/video{parsed}")
        return None if device.exists() else f"{device} does not exist (camera unplugged, or another index?)"
    if "://" in parsed:
        return _network_problem(parsed)
    path = Path(parsed)
    if not path.exists():
        return f"{path} does not exist"
    if path.suffix == MANIFEST_SUFFIX:
        try:
            load_recording(path)
        except ValueError as exc:
            return str(exc)
    return None


def _network_problem(url: str) -> str | None:
    """Why nothing answers at a network camera's host and port (refused, no route, silent), found in at
    most CAMERA_CONNECT_TIMEOUT_S; None when a connection opens (or the URL has no host)."""
    parts = urlsplit(url)
    try:
        port = parts.port or DEFAULT_CAMERA_PORTS.get(parts.scheme.lower())
    except ValueError as exc:
        return f"{redact_url(url)}: {exc}"
    if not parts.hostname or port is None:
        return None
    where = f"{parts.hostname}:{port}"
    try:
        socket.create_connection((parts.hostname, port), timeout=CAMERA_CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        return (f"{redact_url(url)}: cannot connect to {where}: {exc.strerror or 'no answer'} (camera off or "
                "unplugged, or the wrong address or port in the URL?)")
    return None


def grab_frame(source: str, fps: int, timeout_s: float = CAMERA_TIMEOUT_S) -> np.ndarray | None:
    frames = open_frame_source(source, fps)
    try:
        frame = frames.get(timeout=timeout_s)
    finally:
        frames.stop(timeout=1.0)
    return None if frame is None else frame.image


@register_check("cameras")
def check_cameras(config: Config) -> CheckResult:
    """Each lane's camera gives a frame (its size), and the plates the reader finds in it are wide
    enough to read."""
    daemon = running_daemon(config)
    if daemon is not None:  # it holds V4L2 devices; its own camera health is the truth
        return _daemon_cameras(config, daemon)
    lines, failed = [], False
    reader: PlateReader | str | None = None
    for lane in config.lanes:
        source = lane.camera.source
        problem = camera_problem(source)
        image = None if problem else grab_frame(source, lane.camera.fps)
        if image is None:
            failed = True
            why = problem or f"no frame from {redact_url(source)} within {CAMERA_TIMEOUT_S:.0f} s"
            lines.append(f"{lane.name}: {why}")
            continue
        height, width = image.shape[:2]
        reader = _plate_reader(config) if reader is None else reader
        hint, reader = _plate_hint_with(reader, image)
        lines.append(f"{lane.name}: {width}x{height} frame from {redact_url(source)}; {hint}")
    if failed:
        return CheckResult.fail("\n".join(lines), "fix lanes[].camera.source (device index, file, or rtsp:// "
                                "URL with its user and password), the cable or network; try it with parkgate "
                                "lpr read SOURCE --frames 5 (a V4L2 camera is busy while the daemon runs)")
    return CheckResult.ok("\n".join(lines))


MODELS_BROKEN = "plates not read: the models do not work (see the model files check)"


def _plate_reader(config: Config) -> PlateReader | str:
    """The daemon's plate reader, or why plates are not read here: models that do not work are the
    model files check's FAIL (it names the key), not the camera's."""
    vision = config.vision
    try:
        return PlateReader(vision.detector_model, vision.ocr_model, vision.ocr_config, threads=vision.threads,
                           region=vision.region)
    except Exception:  # noqa: BLE001 - missing, truncated or not a model: the model files check says which
        return MODELS_BROKEN


def _plate_hint_with(reader: PlateReader | str, image: np.ndarray) -> tuple[str, PlateReader | str]:
    """The plate hint for ``image`` and the reader for the next lane: a model of the wrong kind loads but
    fails its first read, and is not tried again."""
    if isinstance(reader, str):
        return reader, reader
    try:
        return _plate_hint(reader.read(image)), reader
    except Exception:  # noqa: BLE001 - the model files check names the model and its fix
        return MODELS_BROKEN, MODELS_BROKEN


def _daemon_cameras(config: Config, daemon: dict[str, Any]) -> CheckResult:
    cameras = {lane["name"]: lane.get("camera") or {} for lane in daemon.get("lanes", [])}
    lines = [f"{lane.name}: " + (f"STALLED, no decodable frame for {cameras[lane.name].get('silent_s')} s"
                                 if cameras.get(lane.name, {}).get("state") == "stalled" else
                                 "frames reaching the running daemon" if lane.name in cameras else
                                 "not reported by the running daemon")
             for lane in config.lanes]
    if any("STALLED" in line or "not reported" in line for line in lines):
        return CheckResult.fail("\n".join(lines), "check the camera's cable, network and "
                                "lanes[].camera.source; journalctl -u parkgate names the camera's errors")
    return CheckResult.ok("\n".join(lines) + f" (pid {daemon.get('pid')})")


def _plate_hint(reads: list[PlateRead]) -> str:
    if not reads:
        return "no plate in view (check the aim when a car stands at the barrier)"
    widths = [int(read.box[2] - read.box[0]) for read in reads]
    narrow = [w for w in widths if w < MIN_PLATE_WIDTH_PX]
    hint = f"; aim or zoom for at least {MIN_PLATE_WIDTH_PX} px" if narrow else ""
    return f"plate(s) {', '.join(f'{w} px' for w in widths)} wide{hint}"
