"""The daemon's status snapshot: written atomically to ``<state_dir>/status.json`` every second,
read by ``parkgate status``, served as metrics and published (retained) over MQTT."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATUS_FILE = "status.json"
STALE_AFTER_S = 10.0


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
    gate_events: int = 0
    bookings: int = 0
    inside: int = 0
    alerts: dict[str, int] = field(default_factory=dict)
    chain: dict[str, Any] = field(default_factory=dict)
    mqtt: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def status_path(state_dir: Path) -> Path:
    return state_dir / STATUS_FILE


def write_status(path: Path, snapshot: StatusSnapshot) -> None:
    """Write then rename, so a reader never sees half a file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(snapshot.as_dict(), sort_keys=True, default=str), encoding="utf-8")
    os.replace(tmp, path)


def read_status(path: Path, now: float | None = None) -> dict[str, Any]:
    """The last snapshot, with ``stale`` set when the daemon has not refreshed it lately (dead or
    stopped); ValueError naming the file when there is none or it is unreadable."""
    try:
        snapshot = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"no daemon status at {path} ({exc.__class__.__name__}); is `parkgate run` "
                         "running with this config?") from None
    age = (time.time() if now is None else now) - float(snapshot.get("updated_at", 0))
    snapshot["age_s"] = round(age, 1)
    snapshot["stale"] = snapshot.get("state") != "running" or age > STALE_AFTER_S
    return snapshot


def render_status(snapshot: dict[str, Any]) -> list[str]:
    """Human lines for ``parkgate status``."""
    state = snapshot.get("state", "?") + (" (STALE: daemon not refreshing)" if snapshot.get("stale") else "")
    lines = [f"gateway {snapshot.get('gateway')} pid {snapshot.get('pid')}: {state}, "
             f"updated {snapshot.get('age_s')} s ago, up {snapshot.get('uptime_s')} s"]
    for lane in snapshot.get("lanes", []):
        last = lane.get("last_read") or {}
        link = "up" if lane["link_up"] else "DOWN"
        lines.append(f"lane {lane['name']}: phase {lane['phase']}, link {link}, "
                     f"passes {lane['passes']}, opens {lane['opens']}, refused {lane['refused']}, "
                     f"last read conf {last.get('confidence', '-')} -> {last.get('decision', '-')}")
    backlog = snapshot.get("backlog", {})
    lines.append("backlog: " + (", ".join(f"{k} {v}" for k, v in sorted(backlog.items())) or "empty"))
    chain, mqtt = snapshot.get("chain", {}), snapshot.get("mqtt", {})
    lines.append(f"chain: {chain.get('state', 'off')} {chain.get('detail', '')}".rstrip())
    if chain.get("last_error"):
        ago = _ago(chain.get("last_error_at_ms"), snapshot)
        lines.append(f"chain last error: {chain['last_error']}{ago}")
    lines += _chain_problems(chain)
    lines.append(f"mqtt: {mqtt.get('state', 'off')} {mqtt.get('detail', '')}".rstrip())
    alerts = snapshot.get("alerts") or {}
    if alerts:
        lines.append("alerts: " + ", ".join(f"{code} x{count}" for code, count in sorted(alerts.items())))
    return lines


def _ago(at_ms: Any, snapshot: dict[str, Any]) -> str:
    """`` (N s ago)`` relative to the snapshot's time, or nothing without a time."""
    if not isinstance(at_ms, int | float):
        return ""
    return f" ({max(0.0, float(snapshot.get('updated_at', 0)) - at_ms / 1000):.0f} s ago)"


def _chain_problems(chain: dict[str, Any]) -> list[str]:
    """Rejected gate records (with the contract's reasons) and the sync's alerts, one line each."""
    lines = []
    if chain.get("rejected"):
        newest = "; ".join(chain.get("rejected_records", [])[:3])
        lines.append(f"chain rejected: {chain['rejected']} records (newest: {newest})")
    lines += [f"chain alert {code}: {detail}" for code, detail in sorted(chain.get("alerts", {}).items())]
    return lines
