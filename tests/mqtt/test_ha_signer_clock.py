"""`parkgate mqtt ha-signer` on a gateway whose wall clock is behind (a Pi without a real-time clock, no NTP
yet): its presses are dated with the running daemon's best time (``status.json``), so the daemon, which judges
freshness with that time, does not refuse them as stale. A real mosquitto and the signer's own process; the
daemon is its status file (written here as the daemon writes it); the wall clock is stepped with the
``PARKGATE_CLOCK_OFFSET_FILE`` hook (edge.clock)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from edge.clock import OFFSET_FILE_ENV, wall_clock_ms
from edge.mqtt import generate_key
from edge.mqtt.commands import Command, CommandPolicy, parse_key, verify_command
from edge.mqtt.topics import Topics
from edge.tools.demo import harness as h
from edge.tools.mosquitto import MosquittoBroker, TopicWatcher
from edge.tools.proc import ManagedProcess

GATEWAY, LANE, BUTTON = "sig-gw", "entry-1", "signer/sig-gw/open"
WATCHER = ("watcher", "watcher-secret-2")
THREE_DAYS_MS = 3 * 86_400_000


def test_a_press_is_dated_with_the_daemons_best_time_while_the_wall_clock_is_behind(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    key_text = generate_key()
    (tmp_path / "command-key").write_text(key_text + "\n")
    (tmp_path / "offset").write_text(f"{-THREE_DAYS_MS // 1000}\n")  # this machine's clock: 3 days behind
    topics = Topics("parkgate", GATEWAY)
    broker = MosquittoBroker(tmp_path / "broker", extra_users=dict([WATCHER])).start()
    try:
        (tmp_path / "mqtt-password").write_text(broker.password + "\n")
        config = tmp_path / "parkgate.toml"
        config.write_text(h.toml_text(
            {"gateway": {"id": GATEWAY, "lot_id": "LOT-SIG-1", "state_dir": str(state)},
             "mqtt": {"enabled": True, "host": broker.host, "port": broker.port, "username": broker.username,
                      "password_file": str(tmp_path / "mqtt-password"),
                      "command_key_file": str(tmp_path / "command-key"), "ha_open_button_topic": BUTTON,
                      "tls": {"ca_file": str(broker.ca_file)}}},
            [{"name": LANE, "gate": {"port": "/dev/ttyUSB0"}, "camera": {"source": "0"}}]))
        watcher = TopicWatcher(broker, WATCHER, topics.command(LANE))
        signer = ManagedProcess([sys.executable, "-m", "edge.cli", "mqtt", "ha-signer", "--config",
                                 str(config)], tmp_path / "signer.log",
                                env=os.environ | {OFFSET_FILE_ENV: str(tmp_path / "offset")}).start()
        try:
            assert h.wait_until(lambda: "signing open presses" in signer.log_tail(), 30, 0.1), \
                signer.log_tail()
            assert watcher.subscribed.wait(10)
            # the daemon's best time: the true time (its floor), its wall clock 3 days behind like ours
            h.daemon_status_behind(state, GATEWAY, wall_clock_ms(), THREE_DAYS_MS)
            watcher.client.publish(BUTTON, LANE.encode(), qos=1).wait_for_publish(5)
            signed = h.wait_until(lambda: watcher.on(topics.command(LANE)), 15, 0.05)
            best_now = wall_clock_ms()
        finally:
            signer.stop()
            watcher.close()
    finally:
        broker.stop()
    assert signed, signer.log_tail()
    verdict = verify_command(json.dumps(signed[0]).encode(), parse_key(key_text), best_now, frozenset(),
                             CommandPolicy(GATEWAY, frozenset({LANE})))
    assert isinstance(verdict, Command), verdict  # the daemon would act on it, not refuse it as stale
