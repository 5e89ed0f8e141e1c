"""The daemon's status snapshot: written atomically to ``<state_dir>/status.json`` every second,
read by ``parkgate status``, served as metrics and published (retained) over MQTT.

Staleness is judged on the monotonic clock, not the wall clock (issue #17): the snapshot carries the
daemon's ``time.monotonic()`` and the kernel's boot id; on the same boot ``parkgate status`` compares it
with its own monotonic clock (CLOCK_MONOTONIC is system-wide on Linux), so an NTP step of the wall clock
neither makes a running daemon STALE nor a dead one fresh; a dead pid is STALE at once. Only a snapshot
from another boot (or an older daemon) falls back to the wall-clock age."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge.clock import ClockReading, TrustedClock, describe_behind
from edge.config import Config

STATUS_FILE = "status.json"
STALE_AFTER_S = 10.0
BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True)
class LaneStatus:
    """One lane in the snapshot: its machine's phase, the serial link, counters, the latest read
    (masked plate, confidence, decision) and the latest open latencies."""

    name: str
    phase: str
    link_up: bool
    passes: int = 0
    opens: int = 0
    refused: int = 0
    alerts: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    last_read: dict[str, Any] | None = None
    open_latencies_ms: list[float] = field(default_factory=list)
    camera: dict[str, Any] = field(default_factory=dict)  # {"state": "ok"|"stalled", "silent_s": ...}
    serving: bool = True  # False: not connected yet or failed; ``error`` says why
    error: str = ""
    held: bool = False  # held open by an operator (`parkgate gate hold`) until released
    gate_error: dict[str, Any] | None = None  # the controller's last failure: {"error", "at_ms"}
    gate_position: str | None = None  # closed | opening | open | closing | unknown, last polled
    read_from: dict[str, int] = field(default_factory=dict)  # passes by read source: approach | burst
    presence: bool | None = None  # the presence (arming) loop occupied, as the lane last saw it
    safety: bool | None = None  # the safety loop under the gate occupied


@dataclass(frozen=True)
class StatusSnapshot:
    """What ``status.json`` holds (its JSON is :meth:`as_dict`); ``chain`` and ``mqtt`` are the health
    of the two links as their services report it, ``backlog`` the undelivered outbox rows per
    destination, ``inside`` the vehicles in the lot."""

    gateway: str
    pid: int
    state: str
    updated_at: float
    uptime_s: float
    lanes: tuple[LaneStatus, ...] = ()
    backlog: dict[str, int] = field(default_factory=dict)
    gate_events: int = 0  # recorded since the store was made (a counter: the store retention never lowers it)
    bookings: int = 0
    inside: int = 0
    alerts: dict[str, int] = field(default_factory=dict)
    chain: dict[str, Any] = field(default_factory=dict)
    mqtt: dict[str, Any] = field(default_factory=dict)
    degraded: dict[str, str] = field(default_factory=dict)  # lanes not serving: why
    heartbeat_mono: float | None = None  # the daemon's time.monotonic() when it wrote the snapshot
    boot_id: str = ""
    active_alerts: dict[str, str] = field(default_factory=dict)  # conditions holding now: code -> detail
    clock: dict[str, Any] = field(default_factory=dict)  # wall_ms, best_ms, behind_ms, trusted
    store: dict[str, Any] = field(default_factory=dict)  # writable, pending, pending_audits, dropped

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def status_path(state_dir: Path) -> Path:
    return state_dir / STATUS_FILE


def write_status(path: Path, snapshot: StatusSnapshot) -> None:
    """Write then rename, so a reader never sees half a file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(snapshot.as_dict(), sort_keys=True, default=str), encoding="utf-8")
    os.replace(tmp, path)


def boot_id() -> str:
    """The kernel's boot id ("" where there is none): monotonic times compare only within one boot."""
    try:
        return BOOT_ID_FILE.read_text().strip()
    except OSError:
        return ""


def pid_alive(pid: object) -> bool:
    """Whether a process ``pid`` exists (a zombie counts as gone)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def snapshot_age_s(snapshot: dict[str, Any], now: float | None = None) -> float:
    """Seconds since the daemon wrote ``snapshot``: on the monotonic clock when it was written in this
    boot, on the wall clock otherwise (``now``: a wall-clock time, for tests)."""
    beat = snapshot.get("heartbeat_mono")
    if now is None and isinstance(beat, int | float) and snapshot.get("boot_id") and \
            snapshot.get("boot_id") == boot_id():
        return time.monotonic() - float(beat)
    return (time.time() if now is None else now) - float(snapshot.get("updated_at", 0))


def read_status(path: Path, now: float | None = None) -> dict[str, Any]:
    """The last snapshot, with ``stale`` set when the daemon has not refreshed it lately, or its process
    is gone (dead or stopped); ValueError naming the file when there is none or it is unreadable."""
    try:
        snapshot = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"no daemon status at {path} ({exc.__class__.__name__}); is `parkgate run` "
                         "running with this config?") from None
    age = snapshot_age_s(snapshot, now)
    snapshot["age_s"] = round(age, 1)
    same_boot = bool(snapshot.get("boot_id")) and snapshot.get("boot_id") == boot_id()
    gone = same_boot and not pid_alive(snapshot.get("pid"))
    snapshot["stale"] = age > STALE_AFTER_S or gone or snapshot.get("state") == "stopped"
    snapshot["state_dir_problem"] = state_dir_problem(path.parent)
    return snapshot


def daemon_best_ms(snapshot: dict[str, Any]) -> int | None:
    """The daemon's best time (``edge.clock``) now, from a snapshot :func:`read_status` returned: its best
    time when written plus the snapshot's age (monotonic in this boot); None when it is stale or has none."""
    best = (snapshot.get("clock") or {}).get("best_ms")
    if snapshot.get("stale") or not isinstance(best, int):
        return None
    return best + round(float(snapshot["age_s"]) * 1000)


def gateway_reading(state_dir: Path, clock: TrustedClock) -> ClockReading:
    """The best time on this machine now: ``clock`` (this process's, from the floors it was given: the build
    floor, the store's) raised to the best time of the daemon running here (``status.json``), when one runs.
    What the daemon decides with while it runs; what it would start with otherwise. Readers outside the
    daemon (a signer, a list display) use it rather than the bare wall clock, which may be days behind."""
    best = running_daemon_best_ms(state_dir)
    if best is not None:
        clock.observe(best)
    return clock.reading()


def running_daemon_best_ms(state_dir: Path) -> int | None:
    """The best time now of the daemon running with ``state_dir`` (its ``status.json``); None when there is
    no such status (not started, another machine) or it is stale."""
    try:
        return daemon_best_ms(read_status(status_path(state_dir)))
    except ValueError:
        return None


def display_reading(cfg: Config, floor_ms: int) -> ClockReading:
    """What an operator's tool (lists, bookings, the store's retention and outbox) judges with:
    :func:`gateway_reading` from the store's clock floor ``floor_ms`` and ``clock.behind_tolerance_s``."""
    return gateway_reading(cfg.gateway.state_dir,
                           TrustedClock(floor_ms, tolerance_ms=cfg.clock.behind_tolerance_s * 1000))


def clock_behind_note(reading: ClockReading) -> str | None:
    """What a display judged with ``reading`` says while the wall clock is behind (None: it is trusted)."""
    if reading.trusted:
        return None
    return (f"clock behind by {describe_behind(reading.behind_ms)}: judged with the newest time this "
            "gateway has seen, as the daemon decides; fix NTP")


def state_dir_problem(state_dir: Path) -> str | None:
    """Why the daemon cannot write its state dir (read-only, full), or None."""
    if not os.access(state_dir, os.W_OK):
        return f"state dir {state_dir} is not writable"
    try:
        st = os.statvfs(state_dir)
    except OSError:
        return None
    if st.f_flag & os.ST_RDONLY:
        return f"state dir {state_dir} is on a read-only file system"
    if st.f_bavail * st.f_frsize < 64 * 1024:
        return f"state dir {state_dir} is full ({st.f_bavail * st.f_frsize} bytes free)"
    return None


def render_status(snapshot: dict[str, Any]) -> list[str]:
    """Human lines for ``parkgate status``."""
    state = snapshot.get("state", "?") + (" (STALE: daemon not refreshing)" if snapshot.get("stale") else "")
    if not snapshot.get("stale") and snapshot.get("state") == "starting":
        state += " (no lane serves yet)"
    lines = [f"gateway {snapshot.get('gateway')} pid {snapshot.get('pid')}: {state}, "
             f"updated {snapshot.get('age_s')} s ago, up {snapshot.get('uptime_s')} s"]
    degraded = snapshot.get("degraded") or {}
    if degraded:
        lines.append(f"DEGRADED: {len(degraded)} lane(s) not serving: "
                     + "; ".join(f"{name} ({why})" for name, why in sorted(degraded.items())))
    for lane in snapshot.get("lanes", []):
        if not lane.get("serving", True):
            lines.append(f"lane {lane['name']}: NOT SERVING: {lane.get('error', '')}")
            continue
        last = lane.get("last_read") or {}
        link = "up" if lane["link_up"] else "DOWN"
        gate = f", gate {lane['gate_position']}" if lane.get("gate_position") else ""
        lines.append(f"lane {lane['name']}: phase {lane['phase']}, link {link}{gate}, "
                     f"passes {lane['passes']}, opens {lane['opens']}, refused {lane['refused']}, "
                     f"last read conf {last.get('confidence', '-')} -> {last.get('decision', '-')}"
                     + _camera_problem(lane.get("camera") or {})
                     + (", HELD OPEN by an operator (parkgate gate release)" if lane.get("held") else ""))
        gate_error = lane.get("gate_error") or {}
        if gate_error:
            lines.append(f"lane {lane['name']} gate last error: {gate_error.get('error')}"
                         f"{_ago(gate_error.get('at_ms'), snapshot)}")
    backlog = snapshot.get("backlog", {})
    lines.append("backlog: " + (", ".join(f"{k} {v}" for k, v in sorted(backlog.items())) or "empty"))
    chain, mqtt = snapshot.get("chain", {}), snapshot.get("mqtt", {})
    lines.append(f"chain: {chain.get('state', 'off')} {chain.get('detail', '')}".rstrip())
    if chain.get("last_error"):
        ago = _ago(chain.get("last_error_at_ms"), snapshot)
        lines.append(f"chain last error: {chain['last_error']}{ago}")
    lines += _chain_problems(chain)
    lines.append(f"mqtt: {mqtt.get('state', 'off')} {mqtt.get('detail', '')}".rstrip())
    lines += _health_lines(snapshot)
    return lines


def _health_lines(snapshot: dict[str, Any]) -> list[str]:
    """The clock against its floor, the store's writability, the state dir, and other active alerts."""
    lines = []
    clock, store = snapshot.get("clock") or {}, snapshot.get("store") or {}
    if clock and not clock.get("trusted", True):
        lines.append(f"clock behind by {describe_behind(int(clock.get('behind_ms', 0)))}: deciding with the "
                     "newest time this gateway has seen; fix NTP")
    if store and not store.get("writable", True):
        dropped = f", {store['dropped']} dropped" if store.get("dropped") else ""
        lines.append(f"store NOT WRITABLE: gates stay shut (an operator's open or hold still acts); "
                     f"{store.get('pending', 0)} pass(es) and {store.get('pending_audits', 0)} manual "
                     f"action(s) kept in memory{dropped}")
    if snapshot.get("state_dir_problem"):
        lines.append(f"state dir problem: {snapshot['state_dir_problem']}")
    shown = {"clock_behind", "store_unwritable"}
    active = snapshot.get("active_alerts") or {}
    lines += [f"alert {code}: {detail}" for code, detail in sorted(active.items()) if code not in shown]
    return lines


def _camera_problem(camera: dict[str, Any]) -> str:
    if camera.get("state") != "stalled":
        return ""
    return (f", camera STALLED: no decodable frame for {camera.get('silent_s')} s "
            "(passes refused no_read)")


def _ago(at_ms: Any, snapshot: dict[str, Any]) -> str:
    """`` (N s ago)`` relative to the snapshot's best time (``edge.clock``: the daemon dates its errors with
    it; a wall clock days behind made every error "0 s ago"), its wall-clock time without one; nothing
    without a time."""
    if not isinstance(at_ms, int | float):
        return ""
    best = (snapshot.get("clock") or {}).get("best_ms")
    then_ms = best if isinstance(best, int) else float(snapshot.get("updated_at", 0)) * 1000
    return f" ({max(0.0, (then_ms - at_ms) / 1000):.0f} s ago)"


def _chain_problems(chain: dict[str, Any]) -> list[str]:
    """Rejected gate records (with the contract's reasons) and the sync's alerts, one line each."""
    lines = []
    if chain.get("rejected"):
        newest = "; ".join(chain.get("rejected_records", [])[:3])
        lines.append(f"chain rejected: {chain['rejected']} records (newest: {newest})")
    lines += [f"chain alert {code}: {detail}" for code, detail in sorted(chain.get("alerts", {}).items())]
    return lines
