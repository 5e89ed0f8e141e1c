"""The daemon's MQTT wiring (real Daemon object, real store file; no lane runs, no broker): a bridge that
cannot start loses no event for MQTT."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from edge.access.types import Direction
from edge.config import config_from_mapping
from edge.daemon.service import Daemon
from edge.lanes.machine import Outcome, PassRecord
from edge.store import Store


def test_events_stay_queued_for_mqtt_when_the_bridge_cannot_start(tmp_path: Path) -> None:
    """An unusable mqtt.tls.ca_file keeps the bridge from starting (alert mqtt_not_started). The passes
    recorded meanwhile used to get no 'mqtt' outbox row, so once the file was fixed and the daemon
    restarted they never reached the broker; they now wait in the outbox (the status shows the backlog)."""
    (tmp_path / "command.key").write_text("42" * 32 + "\n")
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    cfg = config_from_mapping({
        "gateway": {"id": "gw-nostart", "state_dir": str(tmp_path / "state")},
        "lanes": [{"name": "in-1"}],
        "mqtt": {"enabled": True, "command_key_file": str(tmp_path / "command.key"),
                 "tls": {"ca_file": str(tmp_path / "ca.pem")}},
    })
    daemon = Daemon(cfg)
    try:
        daemon._start_mqtt(SimpleNamespace(remote_command=lambda command: None))
        assert daemon.bridge is None and daemon.alerts.counts == {"mqtt_not_started": 1}
        daemon.gatekeeper.record(PassRecord("in-1", Direction.ENTRY, 1, Outcome.NO_READ, 1_000, 2_000, None,
                                            None))
    finally:
        daemon.store.close()
    with Store(cfg.store_path) as store:
        assert store.counts().get("outbox.mqtt.pending") == 1, store.counts()
