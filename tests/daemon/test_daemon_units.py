"""Pure parts of the daemon: pass rows and destinations, presence from the log, status, metrics,
recordings and the harness' config writer."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from edge.access.types import Decision, Direction, Reason
from edge.config import parse_config
from edge.daemon.camera import load_recording
from edge.daemon.records import destinations_for, presence_from_events, rows_for_pass
from edge.daemon.status import LaneStatus, StatusSnapshot, read_status, render_status, write_status
from edge.lanes.machine import Outcome, PassRecord
from edge.metrics import Sample, render
from edge.tools.demo.harness import toml_text
from edge.vision.types import PlateRead

COMMITMENT = "0x" + "ab" * 32


def a_pass(outcome: Outcome, direction: Direction = Direction.ENTRY, reason: Reason = Reason.BOOKING_VALID,
           booking: str | None = "7") -> PassRecord:
    decision = Decision(outcome is Outcome.PASSED, reason, None, booking, "AB123CD", COMMITMENT)
    return PassRecord("entry-1", direction, 1, outcome, 1_000, 2_000, PlateRead("AB123CD", 0.9), decision)


def ids():
    counter = iter(range(100))
    return lambda ms: f"event-{ms}-{next(counter):04d}"


def test_first_admission_of_a_requested_booking_records_the_verification_first():
    rows = rows_for_pass(a_pass(Outcome.PASSED), ids(), "requested")
    assert [r.kind for r in rows] == ["verified", "check_in"]
    assert len({r.event_id for r in rows}) == 2
    assert all(r.plate_masked == "AB***D" and r.booking_id == "7" for r in rows)


@pytest.mark.parametrize("status", ["verified", "checked_in", None])
def test_no_verification_once_verified(status):
    assert [r.kind for r in rows_for_pass(a_pass(Outcome.PASSED), ids(), status)] == ["check_in"]


def test_refusals_and_exits_are_single_rows():
    denied = rows_for_pass(a_pass(Outcome.DENIED, reason=Reason.TOO_EARLY), ids(), "requested")
    assert [(r.kind, r.reason) for r in denied] == [("denied", "denied,too_early")]
    out = rows_for_pass(a_pass(Outcome.PASSED, Direction.EXIT, Reason.SESSION_EXIT), ids(), "checked_in")
    assert [r.kind for r in out] == ["check_out"]


def test_destinations_chain_only_for_booking_bound_records():
    booked = rows_for_pass(a_pass(Outcome.DENIED, reason=Reason.TOO_EARLY), ids(), None)[0]
    unbooked = rows_for_pass(a_pass(Outcome.DENIED, reason=Reason.NO_BOOKING, booking=None), ids(), None)[0]
    assert destinations_for(booked, chain=True, mqtt=True) == ("chain", "mqtt")
    assert destinations_for(unbooked, chain=True, mqtt=True) == ("mqtt",)
    assert destinations_for(booked, chain=False, mqtt=False) == ()


def test_presence_is_rebuilt_from_the_log():
    entry = rows_for_pass(a_pass(Outcome.PASSED), ids(), "requested")
    leave = rows_for_pass(a_pass(Outcome.PASSED, Direction.EXIT, Reason.SESSION_EXIT), ids(), None)
    assert presence_from_events(entry).is_inside(COMMITMENT)
    assert presence_from_events([*entry, *leave]).occupancy == 0


def test_status_round_trip_and_staleness(tmp_path: Path):
    path = tmp_path / "status.json"
    lane = LaneStatus("entry-1", "idle", True, passes=2, opens=1, refused=1,
                      last_read={"confidence": 0.9, "decision": "booking_valid"})
    snap = StatusSnapshot("gw", 1, "running", updated_at=1000.0, uptime_s=5, lanes=(lane,),
                          backlog={"chain": 3}, chain={"state": "on"}, mqtt={"state": "off"})
    write_status(path, snap)
    fresh = read_status(path, now=1002.0)
    assert not fresh["stale"]
    assert read_status(path, now=1100.0)["stale"]
    text = "\n".join(render_status(fresh))
    assert "lane entry-1: phase idle, link up" in text and "chain 3" in text
    with pytest.raises(ValueError, match="no daemon status"):
        read_status(tmp_path / "missing.json")


def test_metrics_text_format():
    text = render([Sample("parkgate_up", 1), Sample("parkgate_lane_opens_total", 3, "counter", "opens",
                                                     {"lane": 'a"b'})])
    assert "# TYPE parkgate_up gauge\nparkgate_up 1.0\n" in text
    assert 'parkgate_lane_opens_total{lane="a\\"b"} 3.0' in text
    with pytest.raises(ValueError, match="metric name"):
        render([Sample("bad name", 1)])


def test_metrics_are_grouped_into_one_family_per_name():
    """Samples of two lanes come interleaved; a Prometheus parser must still see each family once."""
    from prometheus_client.parser import text_string_to_metric_families

    from edge.metrics import HistogramSample, LatencyHistogram

    latency = LatencyHistogram()
    for seconds in (0.25, 0.6, 7.0):
        latency.observe(seconds)
    samples = []
    for lane in ("in-1", "out-1"):
        samples += [Sample("parkgate_lane_passes_total", 2, "counter", "passes", {"lane": lane}),
                    Sample("parkgate_lane_link_up", 1, labels={"lane": lane}),
                    Sample("parkgate_lane_refusals_total", 1, "counter", "refusals",
                           {"lane": lane, "reason": "no_booking"}),
                    HistogramSample("parkgate_lane_open_latency_seconds", latency, "latency", {"lane": lane})]
    parsed = list(text_string_to_metric_families(render(samples)))
    names = [family.name for family in parsed]
    assert names == ["parkgate_lane_passes", "parkgate_lane_link_up", "parkgate_lane_refusals",
                     "parkgate_lane_open_latency_seconds"]
    histogram = {(s.name, s.labels.get("le")): s.value for s in parsed[3].samples
                 if s.labels["lane"] == "in-1"}
    assert histogram[("parkgate_lane_open_latency_seconds_bucket", "0.3")] == 1
    assert histogram[("parkgate_lane_open_latency_seconds_bucket", "+Inf")] == 3
    assert histogram[("parkgate_lane_open_latency_seconds_count", None)] == 3


def test_recording_manifest_errors_name_the_file(tmp_path: Path):
    path = tmp_path / "lane.json"
    path.write_text(json.dumps({"fps": 10, "start_epoch": 100.0, "frames": ["a.jpg", "b.jpg"]}))
    recording = load_recording(path)
    assert [recording.index_at(t) for t in (100.05, 100.15, 100.25)] == [0, 1, 0]
    path.write_text("{}")
    with pytest.raises(ValueError, match="lane.json"):
        load_recording(path)


def test_harness_config_is_valid_toml_and_config(tmp_path: Path):
    text = toml_text({"gateway": {"id": "gw", "lot_id": "LOT-1", "state_dir": str(tmp_path)},
                      "mqtt": {"enabled": False, "tls": {"enabled": False}}},
                     [{"name": "entry-1", "gate": {"port": "/dev/null", "pulse_ms": 900},
                       "camera": {"source": "x.json"}}])
    data = tomllib.loads(text)
    assert data["mqtt"]["tls"]["enabled"] is False
    cfg = parse_config(text)
    assert cfg.lanes[0].gate.pulse_ms == 900


# ---- evidence retention, throttles, camera status --------------------------------------------------
DAY = 86_400.0


def test_retention_deletes_expired_files_then_the_oldest_beyond_the_size_bound() -> None:
    from edge.config import EvidenceConfig
    from edge.daemon.retention import EvidenceFile, files_to_delete

    now, mib = 100 * DAY, 1024 * 1024
    files = [EvidenceFile(Path(f"/e/{n}.jpg"), now - age * DAY, size * mib)
             for n, (age, size) in enumerate([(40, 1), (31, 1), (10, 2), (5, 2), (1, 2), (-3, 1)])]
    config = EvidenceConfig(retention_days=30, max_mb=5)
    doomed = [f.path.name for f in files_to_delete(files, now, config)]
    # expired: 0, 1; the rest is 7 MiB > 5: the oldest (2) goes, then it fits; a file from the
    # future is kept (its age proves nothing), the newest too.
    assert doomed == ["0.jpg", "1.jpg", "2.jpg"]
    assert files_to_delete(files[2:], now, EvidenceConfig(retention_days=30, max_mb=100)) == []


def test_evidence_config_has_safe_defaults_and_clear_errors() -> None:
    cfg = parse_config("")
    assert (cfg.evidence.retention_days, cfg.evidence.max_mb) == (30, 1024)
    assert cfg.lanes[0].camera.stall_after_s == 10
    with pytest.raises(ValueError, match=r"evidence\.retention_days"):
        parse_config("[evidence]\nretention_days = 0\n")


def test_throttle_allows_a_burst_then_the_rate_and_counts_the_rest() -> None:
    from edge.throttle import Throttle

    now = [0.0]
    throttle = Throttle(rate_per_s=1, burst=3, max_keys=2, clock=lambda: now[0])
    assert [throttle.allow("a") for _ in range(5)] == [True, True, True, False, False]
    assert throttle.take_refused("a") == 2 and throttle.take_refused("a") == 0
    now[0] = 1.0
    assert throttle.allow("a") and not throttle.allow("a")
    for key in ("b", "c", "d"):  # bounded keys: a key still limited is never forgotten, a new one refused
        throttle.allow(key)
    assert len(throttle._buckets) == 2 and throttle.refused_new == 2


def test_status_says_when_a_lane_camera_is_stalled() -> None:
    stalled = LaneStatus("entry-1", "idle", True, camera={"state": "stalled", "silent_s": 12.5})
    snap = StatusSnapshot("gw", 1, "running", 0.0, 1.0, lanes=(stalled,)).as_dict()
    line = next(line for line in render_status(snap) if line.startswith("lane entry-1"))
    assert "camera STALLED: no decodable frame for 12.5 s" in line
    ok = StatusSnapshot("gw", 1, "running", 0.0, 1.0, lanes=(LaneStatus("entry-1", "idle", True),)).as_dict()
    assert "camera" not in next(line for line in render_status(ok) if line.startswith("lane entry-1"))


def test_the_journal_line_of_a_pass_is_logfmt_with_the_plate_masked():
    from edge.daemon.records import logfmt, pass_log_fields

    opened = logfmt(pass_log_fields(a_pass(Outcome.PASSED), 512.4))
    assert opened == ("lane=entry-1 direction=entry pass=1 plate=AB***D confidence=0.90 decision=allow "
                      "reason=booking_valid outcome=passed gate=opened latency_ms=512 read=-")
    unread = PassRecord("entry-1", Direction.ENTRY, 2, Outcome.NO_READ, 0, 900, None, None)
    refused = pass_log_fields(unread, 900)
    assert [refused[k] for k in ("plate", "decision", "reason", "gate")] == ["-", "-", "no_read", "shut"]
    assert logfmt({"detail": 'gate "A" b', "empty": ""}) == 'detail="gate \\"A\\" b" empty=""'
    assert "AB123CD" not in opened


def test_doctor_names_a_camera_without_its_password(tmp_path: Path, monkeypatch) -> None:
    """An RTSP camera that gives no frame (a closed loopback port) is reported by the doctor with its
    URL's user and password hidden (review 2026-12-03)."""
    import edge.daemon.doctor_checks as checks
    from edge.tools.net import free_tcp_port

    monkeypatch.setattr(checks, "CAMERA_TIMEOUT_S", 1.0)
    url = f"rtsp://admin:S3cret-Pass@127.0.0.1:{free_tcp_port()}/lane"
    lane = {"name": "entry-1", "gate": {"port": "/dev/null"}, "camera": {"source": url}}
    gateway = {"id": "gw", "lot_id": "LOT-1", "state_dir": str(tmp_path)}
    cfg = parse_config(toml_text({"gateway": gateway}, [lane]))
    result = checks.check_cameras(cfg)
    text = f"{result}"
    assert "S3cret-Pass" not in text and "rtsp://***@127.0.0.1" in text, text
