"""Topic layout, Home Assistant discovery, settings validation and the nonce store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.mqtt.bridge import MqttBridge
from edge.mqtt.nonces import NonceStore
from edge.mqtt.settings import MqttSettings, settings_from_url
from edge.mqtt.topics import Topics, discovery_messages

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
    assert set(messages) == {
        "homeassistant/binary_sensor/parkgate_gw-1/connectivity/config",
        "homeassistant/sensor/parkgate_gw-1/in-1_state/config",
        "homeassistant/sensor/parkgate_gw-1/out-1_state/config",
    }
    gateway = json.loads(messages["homeassistant/binary_sensor/parkgate_gw-1/connectivity/config"])
    assert gateway["state_topic"] == TOPICS.availability and gateway["device_class"] == "connectivity"
    lane = json.loads(messages["homeassistant/sensor/parkgate_gw-1/in-1_state/config"])
    assert lane["state_topic"] == TOPICS.lane_state("in-1")
    assert lane["availability_topic"] == TOPICS.availability


def test_discovery_button_only_points_at_a_signing_bridge_topic() -> None:
    messages = dict(discovery_messages(TOPICS, ["in-1"], open_button_topic="signer/gw-1/open"))
    button = json.loads(messages["homeassistant/button/parkgate_gw-1/in-1_open/config"])
    assert button["command_topic"] == "signer/gw-1/open" and button["payload_press"] == "in-1"


def test_settings_from_url() -> None:
    s = settings_from_url("mqtts://user:p%40ss@127.0.0.1:18883", "gw-1", ca_file="/etc/ca.crt")
    assert (s.host, s.port, s.tls, s.username, s.password) == ("127.0.0.1", 18883, True, "user", "p@ss")
    assert s.ca_file == Path("/etc/ca.crt") and s.plate_privacy == "hash"
    plain = settings_from_url("mqtt://broker", "gw-1")
    assert (plain.port, plain.tls, plain.username) == (1883, False, None)


@pytest.mark.parametrize(("url", "overrides", "message"), [
    ("http://broker", {}, "scheme must be mqtt:// or mqtts://"),
    ("mqtts://broker:99999", {}, "port is not a number"),
    ("mqtts://broker", {"plate_privacy": "clear"}, "plate_privacy 'clear' is not one of"),
    ("mqtts://broker", {"client_cert": "/c.crt"}, "client_cert and client_key go together"),
    ("mqtt://broker", {"ca_file": "/ca.crt"}, "need tls = true"),
    ("mqtts://broker", {"outbox_window": 0}, "outbox_window 0 must be a positive integer"),
    ("mqtts://broker", {"prefix": "a/+"}, "cannot be used in MQTT topics"),
])
def test_bad_settings_name_the_value(url: str, overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        settings_from_url(url, "gw-1", **overrides)


def test_settings_report_every_problem_at_once() -> None:
    with pytest.raises(ValueError) as info:
        MqttSettings(host="", gateway_id="gw/1", port=0)
    assert "host is empty" in str(info.value) and "port 0" in str(info.value) and "gw/1" in str(info.value)


def test_nonces_survive_a_restart_and_leave_with_the_window(tmp_path: Path) -> None:
    path = tmp_path / "nonces.sqlite"
    store = NonceStore(path, window_ms=35_000)
    store.remember("aa" * 8, ts_ms=1_000, now_ms=1_000)
    store.close()
    reopened = NonceStore(path, window_ms=35_000)
    assert "aa" * 8 in reopened and "bb" * 8 not in reopened
    reopened.remember("bb" * 8, ts_ms=40_000, now_ms=40_000)
    assert "aa" * 8 not in reopened and len(reopened) == 1
    reopened.close()


def test_bridge_refuses_unusable_tls_files_short_keys_and_bad_lanes(tmp_path: Path) -> None:
    missing_ca = settings_from_url("mqtts://broker", "gw-1", ca_file=tmp_path / "nope.crt")
    with pytest.raises(ValueError, match="mqtt TLS files .* are unusable"):
        MqttBridge(missing_ca, bytes(32), ["in-1"])
    ok = settings_from_url("mqtts://broker", "gw-1")
    with pytest.raises(ValueError, match="at least 16 required"):
        MqttBridge(ok, b"short", ["in-1"])
    with pytest.raises(ValueError, match="clash with the cmd/result topic"):
        MqttBridge(ok, bytes(32), ["result"])
    with pytest.raises(ValueError, match="cannot be used in MQTT topics"):
        MqttBridge(ok, bytes(32), ["in/1"])
