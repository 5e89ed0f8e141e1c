"""Topic layout, Home Assistant discovery, the [mqtt] section from a broker URL, the bridge's own
timings, and the nonce store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.config import ConfigError, config_from_mapping
from edge.mqtt.bridge import BridgeTimings, MqttBridge
from edge.mqtt.nonces import NonceStore
from edge.mqtt.topics import Topics, discovery_messages
from edge.mqtt.wiring import mqtt_config_from_url

TOPICS = Topics("parkgate", "gw-1")


def test_topic_layout() -> None:
    assert TOPICS.availability == "parkgate/gw-1/availability"
    assert TOPICS.lane_state("in-1") == "parkgate/gw-1/lanes/in-1/state"
    assert TOPICS.command("in-1") == "parkgate/gw-1/cmd/in-1"
    assert TOPICS.lane_of_command_topic("parkgate/gw-1/cmd/in-1") == "in-1"
    assert TOPICS.lane_of_command_topic("parkgate/gw-1/cmd/result") is None
    assert TOPICS.lane_of_command_topic("parkgate/gw-2/cmd/in-1") is None


@pytest.mark.parametrize("gateway", ["", "gw/1", "gw+", "gw#", "a" * 65])
def test_gateway_ids_that_break_topics_are_refused(gateway: str) -> None:
    with pytest.raises(ValueError, match="cannot be used in MQTT topics"):
        Topics("parkgate", gateway)


def test_discovery_announces_gateway_and_lanes_without_buttons_by_default() -> None:
    messages = dict(discovery_messages(TOPICS, ["in-1", "out-1"]))
    per_lane = {f"homeassistant/{component}/parkgate_gw-1/{lane}_{what}/config"
                for lane in ("in-1", "out-1")
                for component, what in (("sensor", "state"), ("sensor", "gate_position"),
                                        ("sensor", "decision"), ("binary_sensor", "gate"),
                                        ("binary_sensor", "camera"))}
    assert set(messages) == {
        "homeassistant/binary_sensor/parkgate_gw-1/connectivity/config",
        "homeassistant/sensor/parkgate_gw-1/inside/config",
        "homeassistant/sensor/parkgate_gw-1/backlog/config",
        "homeassistant/sensor/parkgate_gw-1/chain/config",
        *per_lane,
    }
    assert not [topic for topic in messages if "/button/" in topic]
    inside = json.loads(messages["homeassistant/sensor/parkgate_gw-1/inside/config"])
    assert inside["state_topic"] == TOPICS.status and "capacity" in inside["json_attributes_template"]
    gateway = json.loads(messages["homeassistant/binary_sensor/parkgate_gw-1/connectivity/config"])
    assert gateway["state_topic"] == TOPICS.availability and gateway["device_class"] == "connectivity"
    lane = json.loads(messages["homeassistant/sensor/parkgate_gw-1/in-1_state/config"])
    assert lane["state_topic"] == TOPICS.lane_state("in-1")
    assert lane["availability_topic"] == TOPICS.availability


def test_discovery_button_only_points_at_a_signing_bridge_topic() -> None:
    messages = dict(discovery_messages(TOPICS, ["in-1"], open_button_topic="signer/gw-1/open"))
    button = json.loads(messages["homeassistant/button/parkgate_gw-1/in-1_open/config"])
    assert button["command_topic"] == "signer/gw-1/open" and button["payload_press"] == "in-1"


def test_mqtt_section_from_url() -> None:
    m, password = mqtt_config_from_url("mqtts://user:p%40ss@127.0.0.1:18883", ca_file="/etc/ca.crt")
    assert (m.host, m.port, m.tls.enabled, m.username, password) == ("127.0.0.1", 18883, True, "user", "p@ss")
    assert m.tls.ca_file == Path("/etc/ca.crt") and m.plate_privacy == "hash"
    plain, no_password = mqtt_config_from_url("mqtt://broker")
    assert (plain.port, plain.tls.enabled, plain.username, no_password) == (1883, False, None, None)


@pytest.mark.parametrize(("url", "keys", "message"), [
    ("http://broker", {}, "scheme must be mqtt:// or mqtts://"),
    ("mqtts://broker:99999", {}, "port is not a number"),
    ("mqtts://broker", {"plate_privacy": "clear"}, "mqtt.plate_privacy: 'clear' is not allowed; allowed: h"),
    ("mqtts://broker", {"cert_file": "/c.crt"}, "cert_file and key_file go together"),
    ("mqtt://broker", {"ca_file": "/ca.crt"}, "need mqtt.tls.enabled = true"),
    ("mqtts://broker", {"topic_prefix": "a/+"}, r"mqtt.topic_prefix: 'a/\+' is not allowed"),
])
def test_bad_broker_settings_name_the_value(url: str, keys: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mqtt_config_from_url(url, **keys)


def test_bad_bridge_timings_name_the_value() -> None:
    with pytest.raises(ValueError, match="outbox_window 0 must be a positive integer"):
        BridgeTimings(outbox_window=0)


def test_broker_settings_report_every_problem_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_mapping({"gateway": {"id": "gw/1"}, "mqtt": {"host": "", "port": 0}})
    assert [issue.path for issue in info.value.issues] == ["gateway.id", "mqtt.host", "mqtt.port"]
    assert "'gw/1' is not allowed" in str(info.value)


def test_nonces_survive_a_restart_and_leave_with_the_window(tmp_path: Path) -> None:
    path = tmp_path / "nonces.sqlite"
    store = NonceStore(path, window_ms=35_000)
    store.remember("aa" * 8, ts_ms=1_000, now_ms=1_000)
    store.close()
    mono = [100.0]
    reopened = NonceStore(path, window_ms=35_000, mono_s=lambda: mono[0])
    assert "aa" * 8 in reopened and "bb" * 8 not in reopened
    reopened.remember("bb" * 8, ts_ms=40_000, now_ms=40_000)
    assert "aa" * 8 in reopened, "kept for a whole window on the monotonic clock after a restart"
    mono[0] += 35.5
    reopened.remember("cc" * 8, ts_ms=70_000, now_ms=70_000)
    assert "aa" * 8 not in reopened and len(reopened) == 2
    assert reopened.min_ts_ms == 1_000, "the newest forgotten command time is kept"
    reopened.close()


def test_bridge_refuses_unusable_tls_files_short_keys_and_bad_lanes(tmp_path: Path) -> None:
    missing_ca, _ = mqtt_config_from_url("mqtts://broker", ca_file=tmp_path / "nope.crt")
    with pytest.raises(ValueError, match="mqtt TLS files .* are unusable"):
        MqttBridge(missing_ca, "gw-1", bytes(32), ["in-1"])
    ok, _ = mqtt_config_from_url("mqtts://broker")
    with pytest.raises(ValueError, match="at least 16 required"):
        MqttBridge(ok, "gw-1", b"short", ["in-1"])
    with pytest.raises(ValueError, match="clash with the cmd/result topic"):
        MqttBridge(ok, "gw-1", bytes(32), ["result"])
    with pytest.raises(ValueError, match="cannot be used in MQTT topics"):
        MqttBridge(ok, "gw-1", bytes(32), ["in/1"])
    with pytest.raises(ValueError, match="cannot be used in MQTT topics"):
        MqttBridge(ok, "gw/1", bytes(32), ["in-1"])  # the gateway id is a topic level too
