"""The daemon's Prometheus samples (``edge.metrics`` groups them into families): passes and refusals by
reason, open latency, camera frames/fps/reconnects, gate link and errors, broker and chain links,
backlog, alerts. Read from the status loop's latest snapshot and the lanes' own counters."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from edge.daemon.camera import LaneCamera
from edge.daemon.health import StatusLoop
from edge.daemon.status import StatusSnapshot
from edge.metrics import AnySample, HistogramSample, Sample


class Samples:
    """Callable: the samples now (``edge.metrics.MetricsServer`` calls it per scrape, from its thread)."""

    def __init__(self, status: StatusLoop, cameras: Mapping[str, LaneCamera]) -> None:
        self.status = status
        self.cameras = cameras
        self._camera_counts: dict[str, tuple[float, int]] = {}  # lane -> (when, frames) at the last scrape

    def __call__(self) -> list[AnySample]:
        snap = self.status.last
        state, events, inside = (snap.state, snap.gate_events, snap.inside) if snap else ("starting", 0, 0)
        chain = snap.chain if snap else {}
        out: list[AnySample] = [
            Sample("parkgate_up", 1.0 if state == "running" else 0.0, help="1 while serving"),
            Sample("parkgate_gate_events_total", events, "counter", "gate events recorded"),
            Sample("parkgate_inside", inside, help="vehicles inside")]
        out += [Sample("parkgate_outbox_backlog", n, help="rows not yet delivered",
                       labels={"destination": dest}) for dest, n in (snap.backlog if snap else {}).items()]
        out += [Sample("parkgate_alerts_total", n, "counter", "alerts raised, by code", {"code": code})
                for code, n in self.status.alerts.counts.items()]
        out += health_samples(snap)
        out += [Sample("parkgate_lane_camera_up", 0.0 if lane.camera.get("state") == "stalled" else 1.0,
                       help="camera gives decodable frames", labels={"lane": lane.name})
                for lane in (snap.lanes if snap else ())]
        out += self._lane_samples() + self._camera_samples() + self._link_samples(chain)
        return out

    def _lane_samples(self) -> list[AnySample]:
        lanes = self.status.lanes
        out: list[AnySample] = [Sample("parkgate_lane_serving", 0.0 if lane.name in lanes.errors else 1.0,
                                       help="1 while the lane's gate driver is connected and its loop runs "
                                       "(0: `parkgate status` says why)", labels={"lane": lane.name})
                                for lane in lanes.configs]
        for shell in lanes.shells:
            labels, stats = {"lane": shell.config.lane_id}, shell.stats
            out += [Sample("parkgate_lane_held", 1.0 if shell.held else 0.0,
                           help="1 while an operator holds the gate open", labels=labels),
                    Sample("parkgate_lane_passes_total", stats.passes, "counter", "passes", labels),
                    Sample("parkgate_lane_opens_total", stats.opens, "counter", "gate opens", labels),
                    Sample("parkgate_lane_gate_errors_total", stats.gate_errors, "counter",
                           "gate commands that failed", labels),
                    Sample("parkgate_lane_link_up", 1.0 if shell.link_up else 0.0, help="serial link",
                           labels=labels),
                    HistogramSample("parkgate_lane_open_latency_seconds", stats.open_latency,
                                    "from the car on the presence loop to the controller's open ack", labels)]
            out += [Sample("parkgate_lane_refusals_total", n, "counter",
                           "passes that did not open, by reason", {**labels, "reason": reason})
                    for reason, n in stats.refusals.items()]
        return out

    def _camera_samples(self) -> list[AnySample]:
        out: list[AnySample] = []
        now = time.monotonic()
        for name, camera in list(self.cameras.items()):
            source = camera.source
            labels, frames = {"lane": name}, source.frames_read
            before = self._camera_counts.get(name)
            fps = (frames - before[1]) / (now - before[0]) if before and now > before[0] else 0.0
            self._camera_counts[name] = (now, frames)
            out += [Sample("parkgate_camera_frames_total", frames, "counter", "frames captured", labels),
                    Sample("parkgate_camera_fps", round(fps, 2), help="frames per second since the last "
                           "scrape", labels=labels),
                    Sample("parkgate_camera_reconnects_total", source.reconnects, "counter",
                           "camera (re)opens after a failure", labels),
                    Sample("parkgate_camera_frames_dropped_total", source.dropped, "counter",
                           "frames dropped unread (queue full)", labels)]
        return out

    def _link_samples(self, chain: dict[str, Any]) -> list[AnySample]:
        out: list[AnySample] = [
            Sample("parkgate_chain_rejected_records", chain.get("rejected", 0),
                   help="gate records the contract rejected (outbox state 'rejected')"),
            Sample("parkgate_chain_consecutive_failures", chain.get("consecutive_failures", 0),
                   help="chain sync rounds failed in a row (0: healthy)"),
            Sample("parkgate_chain_uploaded_total", chain.get("uploaded_total", 0), "counter",
                   "gate records uploaded"),
            Sample("parkgate_chain_reorgs_total", chain.get("reorgs_total", 0), "counter", "reorgs handled")]
        out += [Sample("parkgate_chain_alert", 1.0, help="a chain sync alert is raised",
                       labels={"code": code}) for code in chain.get("alerts", {})]
        bridge = self.status.bridge
        if bridge is not None:
            health = bridge.health()
            counters = health["counters"]
            connected = 1.0 if health["connected"] else 0.0
            out += [Sample("parkgate_mqtt_connected", connected, help="broker link"),
                    Sample("parkgate_mqtt_connects_total", counters.get("connects", 0), "counter",
                           "broker (re)connects"),
                    Sample("parkgate_mqtt_connect_failures_total", counters.get("connect_failed", 0),
                           "counter", "broker connects refused"),
                    Sample("parkgate_mqtt_disconnects_total", counters.get("disconnects", 0), "counter",
                           "broker links lost")]
            out += [Sample("parkgate_mqtt_commands_rejected_total", n, "counter", "remote commands rejected",
                           labels={"reason": name.split(".", 1)[1]})
                    for name, n in sorted(counters.items()) if name.startswith("cmd_rejected.")]
        return out


def health_samples(snap: StatusSnapshot | None) -> list[AnySample]:
    clock, store = (snap.clock, snap.store) if snap else ({}, {})
    return [
        Sample("parkgate_clock_behind_seconds", clock.get("behind_ms", 0) / 1000,
               help="how far the wall clock is behind the newest time the gateway has seen"),
        Sample("parkgate_clock_trusted", 1.0 if clock.get("trusted", True) else 0.0,
               help="0 while the wall clock is behind the sanity floor"),
        Sample("parkgate_store_writable", 1.0 if store.get("writable", True) else 0.0,
               help="0 while the store refuses writes (disk full or read-only): gates stay shut"),
        Sample("parkgate_store_pending_passes", store.get("pending", 0),
               help="passes kept in memory until the store takes writes again"),
    ]
