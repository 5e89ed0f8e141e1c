"""What `parkgate status` shows about the parts a pass depends on, with the daemon running against real
parts: a chain error (the gateway key not registered for the lot, so its records are refused) reaches
`parkgate status` and `--json` with its text, the gate link and the broker link are reported per part,
and the retained MQTT status is published on change, not every second."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge.chain.syncplan import lot_bytes
from edge.mqtt import generate_key
from edge.mqtt.topics import Topics
from edge.tools.anvil import dev_account
from edge.tools.demo import harness as h
from edge.tools.demo.world import build_world, chain_section, write_secrets
from edge.tools.emulator.launch import running_emulator
from edge.tools.mosquitto import MosquittoBroker, TopicWatcher
from edge.tools.net import free_tcp_port

LOT, GATEWAY, LANE = "LOT-HEALTH-1", "health-gw", "entry-1"
WATCHER = ("watcher", "watcher-secret-2")
BOOKED = h.Vehicle("booked", "AB 123-CD", seed=231)
UNBOOKED = h.Vehicle("unbooked", "KX 904-LM", seed=732)
TOPICS = Topics("parkgate", GATEWAY)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, anvil):
    work = tmp_path_factory.mktemp("health")
    broker = MosquittoBroker(work / "broker", extra_users=dict([WATCHER])).start()
    watcher = TopicWatcher(broker, WATCHER, TOPICS.status)  # counts the retained status messages
    try:
        paths = write_secrets(work / "secrets", dev_account(5))
        world = build_world(anvil.web3(), LOT, bytes.fromhex(paths["plate_key"].read_text().strip()))
        now = world.now()
        rental = world.list_space("H-1/B01", now + 5, now + 6 * 3600)
        world.book(rental, BOOKED.plate, now + 5, now + 4 * 3600)
        world.admin.set_gateway(lot_bytes(LOT), world.gateway.address, False)  # the admin forgot it
        (work / "command-key").write_text(generate_key() + "\n")
        (work / "mqtt-password").write_text(broker.password + "\n")
        camera = h.LaneCamera(work / "camera", LANE)
        metrics_port = free_tcp_port()
        with running_emulator(work, name=LANE) as emulator:
            config = work / "parkgate.toml"
            config.write_text(h.toml_text(
                {"gateway": {"id": GATEWAY, "lot_id": LOT, "state_dir": str(work / "state")},
                 "metrics": {"enabled": True, "port": metrics_port},
                 "chain": chain_section(anvil.url, world.admin.address, paths),
                 "mqtt": {"enabled": True, "host": broker.host, "port": broker.port,
                          "username": broker.username, "password_file": str(work / "mqtt-password"),
                          "command_key_file": str(work / "command-key"), "discovery": True,
                          "ha_open_button_topic": "signer/health-gw/open",
                          "tls": {"ca_file": str(broker.ca_file)}}},
                [{"name": LANE, "gate": {"port": str(emulator.link), "baudrate": 115200, "pulse_ms": 3000},
                  "camera": {"source": str(camera.manifest), "burst_frames": 3}}]))
            daemon = h.start_daemon(config, work / "daemon.log")
            try:
                # The history every test reads, made here so that the tests pass alone and in any
                # order: a booked car admitted, whose check-in the chain refuses (gateway not registered).
                store = work / "state" / "parkgate.sqlite"
                assert h.wait_until(
                    lambda: h.outbox_counts(store) is not None and h.cached_bookings(store) >= 1, 60, 0.2)
                booked = h.play_visit(h.Visit(BOOKED, LANE, True, "booking_valid"), emulator, camera, store)
                yield {"metrics": f"http://127.0.0.1:{metrics_port}/metrics", "broker": broker,
                       "config": config, "emulator": emulator, "camera": camera, "daemon": daemon,
                       "store": store, "watcher": watcher, "world": world, "booked": booked}
            finally:
                daemon.stop()
    finally:
        watcher.close()
        broker.stop()


def status(run: dict, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge.cli", "status", "--config", str(run["config"]),
                           *extra], capture_output=True, text=True, timeout=60)


def test_a_refused_chain_record_reaches_status_with_its_error(run):
    result = run["booked"]
    assert result.held, (result.rows, result.error)

    def chain_error() -> str | None:
        snapshot = json.loads(status(run, "--json").stdout)
        return snapshot["chain"].get("last_error")

    error = h.wait_until(chain_error, 60, 0.5)
    assert error and "NotAGateway" in error, (error, run["daemon"].log_tail())
    text = status(run).stdout
    assert "chain: " in text and "NotAGateway" in text, text
    chain_status = subprocess.run([sys.executable, "-m", "edge.cli", "chain", "status", "--config",
                                   str(run["config"]), "--json"], capture_output=True, text=True, timeout=60)
    assert "NotAGateway" in json.loads(chain_status.stdout)["last_error"], chain_status.stdout


def test_gate_and_broker_health_are_shown_per_part(run):
    snapshot = json.loads(status(run, "--json").stdout)
    assert snapshot["mqtt"]["state"] == "connected", snapshot["mqtt"]
    assert [(lane["name"], lane["link_up"]) for lane in snapshot["lanes"]] == [(LANE, True)]
    text = status(run).stdout
    assert f"lane {LANE}: phase" in text and "link up" in text and "mqtt: connected" in text, text


def test_the_retained_status_is_published_on_change_not_every_second(run):
    def published() -> int:
        return len(run["watcher"].on(TOPICS.status))

    h.wait_until(lambda: published() >= 1, 20, 0.2)
    before = published()
    time.sleep(6.5)  # the daemon refreshes its status every second (6 or 7 publishes if it sent each)
    assert published() - before <= 2, published() - before  # a chain state change


def test_metrics_have_refusals_latency_camera_links_backlog_and_errors(run):
    result = h.play_visit(h.Visit(UNBOOKED, LANE, False, "no_booking"), run["emulator"], run["camera"],
                          run["store"])
    assert result.held, (result.rows, result.error)
    time.sleep(1.2)  # a second scrape apart: the camera's fps is the frames between scrapes
    urllib.request.urlopen(run["metrics"], timeout=5).read()
    time.sleep(1.0)
    text = urllib.request.urlopen(run["metrics"], timeout=5).read().decode()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    for name in ("parkgate_lane_refusals", "parkgate_lane_open_latency_seconds", "parkgate_camera_fps",
                 "parkgate_camera_reconnects", "parkgate_mqtt_connects", "parkgate_outbox_backlog",
                 "parkgate_chain_consecutive_failures", "parkgate_lane_gate_errors", "parkgate_lane_link_up"):
        assert name in families, (name, sorted(families))
    refusals = {s.labels["reason"]: s.value for s in families["parkgate_lane_refusals"].samples
                if s.name.endswith("_total")}
    assert refusals.get("no_booking", 0) >= 1, refusals
    assert 5 <= next(s.value for s in families["parkgate_camera_fps"].samples) <= 15  # the lane runs at 10
    assert text.count("# TYPE parkgate_lane_refusals_total counter") == 1


def test_home_assistant_sees_per_lane_entities_and_their_state(run):
    """A fresh subscriber (as Home Assistant after a restart) gets the retained discovery configs and the
    lane state they read."""
    fresh = TopicWatcher(run["broker"], WATCHER, ["homeassistant/#", f"{TOPICS.base}/#"])
    try:
        lane_topic = TOPICS.lane_state(LANE)

        def gate_known() -> bool:  # the controller's position comes with its next status poll
            return fresh.latest().get(lane_topic, {}).get("gate") is not None

        arrived = h.wait_until(lambda: {lane_topic, TOPICS.status} <= set(fresh.latest()), 15, 0.1)
        assert arrived, sorted(fresh.latest())
        assert h.wait_until(gate_known, 30, 0.1), fresh.latest().get(lane_topic)
        time.sleep(0.5)
        retained = fresh.latest()
    finally:
        fresh.close()
    configs = {topic.split("/")[-2] for topic in retained if topic.startswith("homeassistant/")}
    per_lane = {f"{LANE}_{what}" for what in ("state", "gate_position", "decision", "gate", "camera", "open")}
    assert per_lane | {"inside", "backlog", "chain", "connectivity"} <= configs, configs
    button = retained[f"homeassistant/button/parkgate_{GATEWAY}/{LANE}_open/config"]
    assert button["command_topic"] == "signer/health-gw/open" and button["payload_press"] == LANE
    state = retained[lane_topic]
    assert state["link_up"] is True and state["camera"] == "ok" and "last_decision" in state, state
    assert state["gate"] in ("closed", "opening", "open", "closing"), state
    status_body = retained[TOPICS.status]
    assert {"inside", "capacity", "backlog", "chain", "state"} <= set(status_body), status_body


@pytest.mark.parametrize("url_scheme, tls_keys, expected", [
    ("mqtts", {}, "the broker's certificate is not trusted"),  # no ca_file: the system CAs
    ("mqtt", {}, "closed the connection before CONNACK"),  # plain MQTT against the TLS listener
])
def test_a_tls_mismatch_with_the_broker_is_named_in_the_link_health(run, url_scheme, tls_keys, expected):
    from edge.mqtt.bridge import MqttBridge
    from edge.mqtt.wiring import mqtt_config_from_url

    broker = run["broker"]
    config, password = mqtt_config_from_url(f"{url_scheme}://{broker.username}:{broker.password}@"
                                            f"{broker.host}:{broker.port}", client_id=f"probe-{url_scheme}",
                                            **tls_keys)
    bridge = MqttBridge(config, "probe-gw", bytes(32), [LANE], password=password).start()
    try:
        error = h.wait_until(lambda: bridge.health()["last_connect_error"], 15, 0.1)
    finally:
        bridge.stop(timeout=2)
    assert error and expected in error, error
    assert not bridge.connected


def test_a_home_assistant_press_becomes_a_signed_open_through_the_signer(run, tmp_path):
    """`parkgate mqtt ha-signer` (its own process, the gateway's config) signs each press on
    mqtt.ha_open_button_topic; unknown lanes and a repeated press within 2 s open nothing."""
    from edge.tools.proc import ManagedProcess

    emulator = run["emulator"]
    signer = ManagedProcess([sys.executable, "-m", "edge.cli", "mqtt", "ha-signer", "--config",
                             str(run["config"])], tmp_path / "signer.log").start()
    try:
        assert h.wait_until(lambda: "signing open presses" in signer.log_tail(), 30, 0.1), signer.log_tail()
        press = TopicWatcher(run["broker"], WATCHER, "signer/health-gw/open")  # Home Assistant's button
        assert press.subscribed.wait(10)
        try:
            opens = emulator.state()["open_commands"]
            for payload in (b"no-such-lane", LANE.encode(), LANE.encode()):
                press.client.publish("signer/health-gw/open", payload, qos=1).wait_for_publish(5)
            assert h.wait_until(lambda: emulator.state()["open_commands"] > opens, 15, 0.1), signer.log_tail()
            time.sleep(1.0)
            assert emulator.state()["open_commands"] == opens + 1  # the repeat within 2 s signed nothing
            assert "unknown lane 'no-such-lane' refused" in signer.log_tail()
            # The next test's car must find the barrier down again (the open is a 3 s pulse).
            assert h.wait_until(lambda: emulator.state()["position"] == "CLOSED", 20, 0.1), emulator.state()
        finally:
            press.close()
    finally:
        signer.stop()

    for step in ("presence 1", "safety 1", "presence 0", "safety 0"):  # a car drives through the open gate
        emulator.command(step)
        time.sleep(0.3)

    def idle() -> bool:
        return json.loads(status(run, "--json").stdout)["lanes"][0]["phase"] == "idle"
    assert h.wait_until(idle, 30, 0.5)  # the manual pass is over before another test drives a car
