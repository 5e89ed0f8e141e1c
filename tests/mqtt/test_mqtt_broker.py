"""The bridge against a real mosquitto with password auth and TLS on a free loopback port."""

from __future__ import annotations

import json
import logging
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.config import config_from_mapping
from edge.daemon.lists import apply_list_command
from edge.mqtt import BridgeTimings, CommandOutcome, MqttBridge, NonceStore, sign_command
from edge.mqtt.commands import Command
from edge.mqtt.privacy import hash_plate
from edge.mqtt.probe import transport_problem
from edge.mqtt.wiring import bridge_from_config, mqtt_config_from_url
from edge.store import GateEventRow, Store, new_event_id, wall_clock_ms
from edge.tools.mosquitto import MosquittoBroker, issue_cert, make_ca, publish_paced
from edge.tools.proc import ManagedProcess

KEY = bytes.fromhex("42" * 32)
WATCHER = ("watcher", "watcher-secret")
LANES = ("in-1", "out-1")


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Watcher:
    """A plain MQTT subscriber (its own broker user) that records what it receives."""

    def __init__(self, broker: MosquittoBroker, topic: str = "#") -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        c.username_pw_set(*WATCHER)
        c.tls_set(ca_certs=str(broker.ca_file))
        c.on_message = self._on_message
        c.on_subscribe = lambda *a: self._subscribed.set()
        c.on_connect = lambda client, *a: client.subscribe(topic, qos=1)
        c.connect(broker.host, broker.port)
        c.loop_start()
        self.client = c
        assert self._subscribed.wait(10), "watcher could not subscribe"

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def on(self, topic: str) -> list[bytes]:
        with self._lock:
            return [p for t, p, _ in self.messages if t == topic]

    def last(self, topic: str) -> bytes | None:
        payloads = self.on(topic)
        return payloads[-1] if payloads else None

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    with MosquittoBroker(tmp_path_factory.mktemp("broker"), extra_users=dict([WATCHER]),
                         cert_listener=True) as b:
        yield b


def bridge_for(broker: MosquittoBroker, gateway: str, **kwargs: object) -> MqttBridge:
    config, password = mqtt_config_from_url(broker.url, ca_file=broker.ca_file, discovery=True)
    timings = BridgeTimings(reconnect_min_s=1, reconnect_max_s=2, **kwargs.pop("timings", {}))
    return MqttBridge(config, gateway, KEY, LANES, password=password, timings=timings, poll_s=0.2, **kwargs)


def test_wrong_password_is_refused_and_logged_once(broker: MosquittoBroker,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """Refused at every retry, and logged when the error changes, not at every retry (at the 30 s back-off a
    wrong password wrote 2,880 identical lines a day)."""
    caplog.set_level(logging.ERROR, logger="edge.mqtt.bridge")
    config, password = mqtt_config_from_url(f"mqtts://{broker.username}:wrong@{broker.host}:{broker.port}",
                                            ca_file=broker.ca_file)
    bridge = MqttBridge(config, "gw-bad", KEY, LANES, password=password,
                        timings=BridgeTimings(reconnect_min_s=1, reconnect_max_s=1)).start()
    try:
        wait_until(lambda: bridge.stats["connect_failed"] >= 3, what="three refusals")
        assert not bridge.connected
        assert bridge.last_connect_error in {"Bad user name or password", "Not authorized"}
        assert len([r for r in caplog.records if "refused the connection" in r.getMessage()]) == 1
    finally:
        bridge.stop()


def test_client_certificate_authenticates_without_password(broker: MosquittoBroker) -> None:
    config, _ = mqtt_config_from_url(f"mqtts://{broker.host}:{broker.cert_port}", ca_file=broker.ca_file,
                                     cert_file=broker.client_cert, key_file=broker.client_key)
    with MqttBridge(config, "gw-cert", KEY, LANES) as bridge:
        assert bridge.wait_connected(10), bridge.last_connect_error


def test_a_client_certificate_the_broker_refuses_is_named(broker: MosquittoBroker, tmp_path: Path) -> None:
    """TLS 1.3: the broker checks a client certificate after the handshake, so its refusal (here a
    certificate from another CA) came as "closed the connection before CONNACK ... a TLS port?"; the
    status, the log and the doctor's probe now name the certificate."""
    other = make_ca(tmp_path)
    cert, key = issue_cert(tmp_path, other, "client", broker.username, server=False)
    config, _ = mqtt_config_from_url(f"mqtts://{broker.host}:{broker.cert_port}", ca_file=broker.ca_file,
                                     cert_file=cert, key_file=key)
    problem = transport_problem(config)
    assert problem is not None and problem.kind == "client_cert" and "unknown ca" in str(problem), problem
    bridge = MqttBridge(config, "gw-badcert", KEY, LANES).start()
    try:
        wait_until(lambda: bridge.last_connect_error, what="the connection error")
        assert "refused this client's TLS certificate" in (bridge.last_connect_error or "")
        assert not bridge.connected
    finally:
        bridge.stop(timeout=2)


def test_retained_state_discovery_reads_and_clean_offline(broker: MosquittoBroker) -> None:
    bridge = bridge_for(broker, "gw-ret")
    bridge.publish_status({"version": "test", "lanes": 2})  # before connecting: sent once connected
    bridge.start()
    watcher = Watcher(broker, "parkgate/gw-ret/#")
    try:
        assert bridge.wait_connected(10), bridge.last_connect_error
        bridge.publish_lane_state("in-1", {"state": "closed"})
        assert bridge.publish_read({"lane": "in-1", "plate": "AB 123", "confidence": 0.93})
        wait_until(lambda: watcher.on("parkgate/gw-ret/reads"), what="the plate read")
        read = watcher.on("parkgate/gw-ret/reads")[0]
        assert json.loads(read)["plate_hash"] == hash_plate("AB123", KEY) and b"AB123" not in read
    finally:
        watcher.close()
        bridge.stop()
    late = Watcher(broker, "#")  # subscribes after the gateway left: only retained messages remain
    try:
        wait_until(lambda: late.last("parkgate/gw-ret/lanes/in-1/state"), what="retained lane state")
        assert late.last("parkgate/gw-ret/availability") == b"offline"
        assert json.loads(late.last("parkgate/gw-ret/status") or b"{}") == {"version": "test", "lanes": 2}
        assert json.loads(late.last("parkgate/gw-ret/lanes/in-1/state") or b"{}") == {"state": "closed"}
        config = late.last("homeassistant/binary_sensor/parkgate_gw-ret/connectivity/config")
        assert config is not None and json.loads(config)["state_topic"] == "parkgate/gw-ret/availability"
        assert late.last("parkgate/gw-ret/reads") is None  # reads are not retained
    finally:
        late.close()


def test_last_will_says_offline_when_the_gateway_dies(broker: MosquittoBroker, tmp_path: Path) -> None:
    watcher = Watcher(broker, "parkgate/gw-lwt/availability")
    spec = {"url": broker.url, "ca_file": str(broker.ca_file), "gateway": "gw-lwt", "lanes": list(LANES)}
    script = Path(__file__).with_name("mqtt_bridge_child.py")
    child = ManagedProcess([sys.executable, str(script), json.dumps(spec)], tmp_path / "child.log")
    try:
        child.start()
        wait_until(lambda: watcher.last("parkgate/gw-lwt/availability") == b"online", 20,
                   what=f"the child to come online; log: {child.log_tail()}")
        child.kill()  # SIGKILL: no clean disconnect, the broker must publish the will
        wait_until(lambda: watcher.last("parkgate/gw-lwt/availability") == b"offline", what="the last will")
    finally:
        child.stop()
        watcher.close()


def test_signed_commands_accepted_and_bad_ones_refused(broker: MosquittoBroker, tmp_path: Path) -> None:
    received: list[Command] = []

    def handle(cmd: Command) -> CommandOutcome:
        received.append(cmd)
        return CommandOutcome(True, "queued")

    nonces = NonceStore(tmp_path / "nonces.sqlite", window_ms=35_000)
    bridge = bridge_for(broker, "gw-cmd", on_command=handle, nonces=nonces).start()
    watcher = Watcher(broker, "parkgate/gw-cmd/cmd/#")
    results = "parkgate/gw-cmd/cmd/result"
    try:
        assert bridge.wait_subscribed(10), bridge.last_connect_error
        now = wall_clock_ms()
        good = sign_command(KEY, "gw-cmd", "in-1", "open", now)
        doc = json.loads(good)
        unsigned = json.dumps({k: v for k, v in doc.items() if k != "sig"}).encode()
        wrong_key = sign_command(bytes(32), "gw-cmd", "in-1", "open", now)
        stale = sign_command(KEY, "gw-cmd", "in-1", "open", now - 60_000)
        for payload in (good, unsigned, wrong_key, good, stale):  # the second `good` is a replay
            watcher.publish("parkgate/gw-cmd/cmd/in-1", payload)
        wait_until(lambda: len(watcher.on(results)) == 5, what="five command results")
        outcomes = [json.loads(p) for p in watcher.on(results)]
        assert outcomes[0] == {"ok": True, "lane": "in-1", "action": "open", "nonce": doc["nonce"],
                               "detail": "queued"}
        assert [o.get("reason") for o in outcomes[1:]] == ["unsigned", "bad_signature", "replayed", "stale"]
        assert received == [Command("gw-cmd", "in-1", "open", now, doc["nonce"])]
        assert bridge.stats["cmd_accepted"] == 1 and bridge.stats["cmd_rejected.replayed"] == 1
    finally:
        watcher.close()
        bridge.stop()
    restarted = NonceStore(tmp_path / "nonces.sqlite", window_ms=35_000)
    assert doc["nonce"] in restarted  # a restart does not reopen the replay window


def test_a_stale_command_stays_refused_when_the_clock_steps_back(broker: MosquittoBroker,
                                                                  tmp_path: Path) -> None:
    """Issue #17: the bridge keeps the nonce of a correctly signed command it refused as stale, so a
    wall clock stepped back 40 s (here a bridge clock with no floor at all) cannot make it acceptable."""
    received: list[Command] = []
    offset_ms = [0]

    def handle(cmd: Command) -> CommandOutcome:
        received.append(cmd)
        return CommandOutcome(True, "queued")

    nonces = NonceStore(tmp_path / "nonces.sqlite", window_ms=35_000)
    bridge = bridge_for(broker, "gw-step", on_command=handle, nonces=nonces,
                        clock_ms=lambda: wall_clock_ms() + offset_ms[0]).start()
    watcher = Watcher(broker, "parkgate/gw-step/cmd/#")
    results = "parkgate/gw-step/cmd/result"
    try:
        assert bridge.wait_subscribed(10), bridge.last_connect_error
        captured = sign_command(KEY, "gw-step", "in-1", "open", wall_clock_ms() - 35_000)
        watcher.publish("parkgate/gw-step/cmd/in-1", captured)
        wait_until(lambda: len(watcher.on(results)) == 1, what="the first result")
        offset_ms[0] = -40_000  # NTP steps the clock back 40 s
        watcher.publish("parkgate/gw-step/cmd/in-1", captured)
        wait_until(lambda: len(watcher.on(results)) == 2, what="the second result")
        reasons = [json.loads(p).get("reason") for p in watcher.on(results)]
        assert reasons == ["stale", "replayed"] and received == []
    finally:
        watcher.close()
        bridge.stop()


def record_events(store: Store, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        event = GateEventRow(event_id=new_event_id(), lane="in-1", direction="entry", kind="check_in",
                          reason="booking_valid", occurred_at_ms=wall_clock_ms(), plate_masked="AB***3")
        assert store.record_gate_event(event, destinations=("mqtt",))
        ids.append(event.event_id)
    return ids


def event_ids(watcher: Watcher, topic: str) -> list[str]:
    return [json.loads(p)["event_id"] for p in watcher.on(topic)]


def test_outbox_loses_nothing_across_a_broker_outage(tmp_path: Path) -> None:
    db = tmp_path / "gw.sqlite"
    store = Store(db)
    topic = "parkgate/gw-out/events"
    broker = MosquittoBroker(tmp_path / "broker", extra_users=dict([WATCHER])).start()
    bridge = bridge_for(broker, "gw-out", open_outbox=lambda: Store(db), timings={"outbox_window": 8})
    before = Watcher(broker, topic)
    after: Watcher | None = None
    try:
        bridge.start()
        assert bridge.wait_connected(10), bridge.last_connect_error
        first = record_events(store, 20)
        bridge.notify_outbox()
        wait_until(lambda: set(event_ids(before, topic)) == set(first), what="events before the outage")
        assert "plate_masked" not in json.loads(before.on(topic)[0])  # hash mode drops the stored mask

        before.close()  # it would reconnect to the restarted broker and count the outage events twice
        broker.kill()
        wait_until(lambda: not bridge.connected, what="the bridge to notice the outage")
        during = record_events(store, 25)
        bridge.notify_outbox()
        counts = store.counts()
        waiting = counts.get("outbox.mqtt.pending", 0) + counts.get("outbox.mqtt.in_flight", 0)
        assert waiting >= 25 and waiting + counts.get("outbox.mqtt.done", 0) == 45  # a PUBACK may be lost

        # Restart with the gateway locked out, so the new subscriber is surely listening before it returns.
        broker.set_users({WATCHER[0]: WATCHER[1]})
        broker.start()
        after = Watcher(broker, topic)
        wait_until(lambda: bridge.last_connect_error, what="the locked-out gateway to be refused")
        broker.set_users(broker.all_users())
        broker.reload()

        wait_until(lambda: set(event_ids(after, topic)) >= set(during), 20, what="the outage's events")
        seen = event_ids(before, topic) + event_ids(after, topic)
        assert set(seen) == set(first) | set(during)
        assert [i for i in dict.fromkeys(event_ids(after, topic)) if i in during] == during  # order kept
        assert len(seen) - len(set(seen)) <= 8  # duplicates bounded by the in-flight window
        wait_until(lambda: store.counts().get("outbox.mqtt.done") == 45, what="all rows marked done")
    finally:
        if after is not None:
            after.close()
        before.close()
        bridge.stop()
        broker.stop()
        store.close()


def test_the_bridge_keeps_to_the_brokers_receive_maximum(tmp_path: Path) -> None:
    """A broker that takes at most 3 unacknowledged messages (its CONNACK's Receive Maximum: HiveMQ's
    default is 10, ours 24) gets at most 3 from the bridge, and every event still arrives once."""
    db = tmp_path / "gw.sqlite"
    topic = "parkgate/gw-rm/events"
    with Store(db) as store, MosquittoBroker(tmp_path / "broker", extra_users=dict([WATCHER]),
                                             settings=("max_inflight_messages 3",)) as broker:
        bridge = bridge_for(broker, "gw-rm", open_outbox=lambda: Store(db))
        watcher = Watcher(broker, topic)
        try:
            assert bridge.inflight_limit == 24  # the outbox window (16) + 8, until a broker says less
            bridge.start()
            assert bridge.wait_connected(10), bridge.last_connect_error
            assert bridge.inflight_limit == 3 == bridge._client.max_inflight_messages  # paho's own limit
            recorded = record_events(store, 40)
            bridge.notify_outbox()
            wait_until(lambda: store.counts().get("outbox.mqtt.done") == 40, 20, what="all rows marked done")
            wait_until(lambda: len(event_ids(watcher, topic)) >= 40, what="the events at the watcher")
            assert sorted(event_ids(watcher, topic)) == sorted(recorded)
        finally:
            watcher.close()
            bridge.stop()


def test_bridge_from_the_gateway_config_delivers_a_recorded_event(broker: MosquittoBroker,
                                                                   tmp_path: Path) -> None:
    (tmp_path / "mqtt.pass").write_text(broker.password + "\n")
    (tmp_path / "gw.key").write_text(KEY.hex() + "\n")
    cfg = config_from_mapping({
        "gateway": {"id": "gw-cfg", "state_dir": str(tmp_path)},
        "lanes": [{"name": "in-1"}],
        "mqtt": {"enabled": True, "host": broker.host, "port": broker.port, "username": broker.username,
                 "password_file": str(tmp_path / "mqtt.pass"), "tls": {"ca_file": str(broker.ca_file)},
                 "command_key_file": str(tmp_path / "gw.key"), "plate_privacy": "mask"},
    })
    watcher = Watcher(broker, "parkgate/gw-cfg/events")
    bridge = bridge_from_config(cfg, on_command=lambda cmd: CommandOutcome(False, "test"))
    store = Store(cfg.store_path)
    try:
        [event_id] = record_events(store, 1)
        bridge.start()
        assert bridge.wait_connected(10), bridge.last_connect_error
        wait_until(lambda: event_ids(watcher, "parkgate/gw-cfg/events") == [event_id], what="the event")
        assert json.loads(watcher.on("parkgate/gw-cfg/events")[0])["plate_masked"] == "AB***3"
    finally:
        bridge.stop()
        watcher.close()
        store.close()


def test_events_the_broker_refuses_are_kept_and_sent_once_allowed(tmp_path: Path) -> None:
    deny_events = ("user parkgate\ntopic readwrite parkgate/gw-acl/availability\n\n"
                   "user watcher\ntopic read #\n")
    broker = MosquittoBroker(tmp_path / "broker", extra_users=dict([WATCHER]), acl=deny_events).start()
    db = tmp_path / "gw.sqlite"
    store = Store(db)
    bridge = bridge_for(broker, "gw-acl", open_outbox=lambda: Store(db), timings={"refused_retry_s": 1})
    watcher = Watcher(broker, "parkgate/gw-acl/events")
    try:
        ids = record_events(store, 3)
        bridge.start()
        wait_until(lambda: bridge.stats["events_refused"] >= 3, what="the broker to refuse the events")
        row = store.outbox_row("mqtt", ids[0])
        assert row is not None and row.status != "done" and "Not authorized" in (row.last_error or "")
        assert watcher.on("parkgate/gw-acl/events") == []

        (broker.workdir / "acl").write_text("user parkgate\ntopic readwrite parkgate/gw-acl/#\n\n"
                                            "user watcher\ntopic read #\n")
        broker.reload()
        wait_until(lambda: set(event_ids(watcher, "parkgate/gw-acl/events")) == set(ids), what="the events")
        wait_until(lambda: store.counts().get("outbox.mqtt.done") == 3, what="rows marked done")
    finally:
        watcher.close()
        bridge.stop()
        broker.stop()
        store.close()


def test_ten_thousand_rejected_commands_are_counted_with_few_log_lines(
        broker: MosquittoBroker, caplog: pytest.LogCaptureFixture) -> None:
    """A flood of bad commands on one lane's topic: every one is counted, the log gets a bounded number
    of lines (each saying how many rejections it stands for), and beyond the topic's burst the bridge
    neither verifies nor answers them."""
    bridge = bridge_for(broker, "gw-flood").start()
    watcher = Watcher(broker, "parkgate/gw-flood/cmd/result")
    timings = bridge.timings
    try:
        assert bridge.wait_subscribed(10), bridge.last_connect_error
        caplog.set_level(logging.WARNING, logger="edge.mqtt.bridge")

        def rejected() -> int:
            return sum(v for k, v in bridge.health()["counters"].items() if k.startswith("cmd_rejected."))

        publish_paced(lambda n: watcher.publish("parkgate/gw-flood/cmd/in-1", b"{not json %d" % n), 10_000,
                      rejected)
        wait_until(lambda: rejected() == 10_000, 60, what="10,000 rejections counted")
        counters = bridge.health()["counters"]
        assert counters["cmd_rejected.malformed"] + counters["cmd_rejected.rate_limited"] == 10_000
        verified_at_most = timings.command_burst + 60 * timings.commands_per_s  # the run takes < 60 s
        assert counters["cmd_rejected.rate_limited"] >= 10_000 - verified_at_most
        lines = [r.getMessage() for r in caplog.records if "rejected command" in r.getMessage()]
        assert len(lines) <= 2 * timings.rejection_logs_burst + 4, lines
        assert len(watcher.on("parkgate/gw-flood/cmd/result")) == counters["cmd_rejected.malformed"]
    finally:
        watcher.close()
        bridge.stop()


def test_made_up_lane_topics_share_one_command_budget(broker: MosquittoBroker) -> None:
    """A flood spread over made-up lane topics (cmd/x0, cmd/x1, ...) gets no fresh burst per topic: those
    topics share one budget, so beyond it nothing is verified or answered; a real lane keeps its own."""
    received: list[Command] = []
    bridge = bridge_for(broker, "gw-rot", on_command=lambda c: received.append(c) or CommandOutcome(True))
    bridge.start()
    watcher = Watcher(broker, "parkgate/gw-rot/cmd/result")
    timings = bridge.timings
    try:
        assert bridge.wait_subscribed(10), bridge.last_connect_error
        for n in range(200):
            watcher.publish(f"parkgate/gw-rot/cmd/x{n}", b"{not json")
        good = sign_command(KEY, "gw-rot", "in-1", "open", wall_clock_ms())
        watcher.publish("parkgate/gw-rot/cmd/in-1", good)
        wait_until(lambda: len(received) == 1, what="the real lane's command")

        def rejected() -> int:  # busy: a flood faster than the command thread is refused unverified too
            counters = bridge.health()["counters"]
            return sum(counters.get(f"cmd_rejected.{why}", 0)
                       for why in ("malformed", "rate_limited", "busy"))

        # each flood message is counted once, though not always before the lane's command (a random
        # order of the suite under load counted 199 at that moment)
        wait_until(lambda: rejected() >= 200, what="every flood message counted")
        counters = bridge.health()["counters"]
        assert rejected() == 200, counters
        assert counters["cmd_rejected.malformed"] <= timings.command_burst + 10 * timings.commands_per_s
    finally:
        watcher.close()
        bridge.stop()


def test_the_bridge_asks_the_broker_for_a_maximum_packet_size(broker: MosquittoBroker) -> None:
    """A command bigger than the bridge's maximum packet size never reaches it: the broker drops it
    for this client (MQTT 5), and the next command still comes through."""
    received: list[Command] = []
    bridge = bridge_for(broker, "gw-big", on_command=lambda c: received.append(c) or CommandOutcome(True),
                        timings={"max_packet_bytes": 4096}).start()
    watcher = Watcher(broker, "parkgate/gw-big/cmd/result")
    try:
        assert bridge.wait_subscribed(10), bridge.last_connect_error
        watcher.publish("parkgate/gw-big/cmd/in-1", b"x" * 1_000_000)
        good = sign_command(KEY, "gw-big", "in-1", "open", wall_clock_ms())
        watcher.publish("parkgate/gw-big/cmd/in-1", good)
        wait_until(lambda: watcher.on("parkgate/gw-big/cmd/result"), what="the good command's result")
        time.sleep(0.3)
        assert len(watcher.on("parkgate/gw-big/cmd/result")) == 1 and len(received) == 1  # big one unseen
        assert bridge.connected and not any(k.startswith("cmd_rejected") for k in bridge.health()["counters"])
    finally:
        watcher.close()
        bridge.stop()


def take_over_session(broker: MosquittoBroker, client_id: str) -> None:
    """Connect with the bridge's client id: the broker drops the bridge, which reconnects by itself (and
    is sent the command topics' retained messages again)."""
    c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                    protocol=mqtt.MQTTv5)
    c.username_pw_set(broker.username, broker.password)
    c.tls_set(ca_certs=str(broker.ca_file))
    c.connect(broker.host, broker.port)
    c.loop_start()
    try:
        wait_until(c.is_connected, what="the session takeover")
    finally:
        c.disconnect()
        c.loop_stop()


def test_a_retained_command_is_refused_once_and_never_acted_on(broker: MosquittoBroker,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    """A command published with the retain flag stays on the broker, which sends it again at every
    (re)subscribe: it is refused (never acted on, even fresh and correctly signed) once, with a log line
    saying how to clear it, not again at every reconnect; an empty retained message clears it."""
    caplog.set_level(logging.WARNING, logger="edge.mqtt.bridge")
    received: list[Command] = []
    bridge = bridge_for(broker, "gw-rtn", on_command=lambda c: received.append(c) or CommandOutcome(True))
    bridge.start()
    watcher = Watcher(broker, "parkgate/gw-rtn/cmd/result")
    topic, results = "parkgate/gw-rtn/cmd/in-1", "parkgate/gw-rtn/cmd/result"
    try:
        assert bridge.wait_subscribed(10), bridge.last_connect_error
        watcher.client.publish(topic, sign_command(KEY, "gw-rtn", "in-1", "open", wall_clock_ms()), qos=1,
                               retain=True).wait_for_publish(5)
        wait_until(lambda: watcher.on(results), what="the refusal")
        for n in (2, 3):
            take_over_session(broker, bridge.client_id)
            wait_until(lambda n=n: bridge.stats["connects"] == n and bridge.connected, what=f"connect #{n}")
        time.sleep(0.5)  # the retained command has come again by now (sent right after the SUBACK)
        assert [json.loads(p) for p in watcher.on(results)] == [{"ok": False, "lane": "in-1",
                                                                 "reason": "retained"}]
        assert received == [] and bridge.stats["cmd_rejected.retained"] == 1
        lines = [r.getMessage() for r in caplog.records if "retained" in r.getMessage()]
        assert len(lines) == 1 and "empty retained message" in lines[0], lines
        watcher.client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)  # clears it
        good = sign_command(KEY, "gw-rtn", "in-1", "open", wall_clock_ms())
        watcher.publish(topic, good)
        wait_until(lambda: len(watcher.on(results)) == 2, what="the next live command's result")
        assert json.loads(watcher.on(results)[1])["ok"] and len(received) == 1
        assert not any(k != "cmd_rejected.retained" for k in bridge.stats if k.startswith("cmd_rejected."))
    finally:
        watcher.client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
        watcher.close()
        bridge.stop()


def test_a_list_command_waiting_for_a_locked_store_does_not_stall_the_connection(
        broker: MosquittoBroker, tmp_path: Path) -> None:
    """A list command writes the store (its nonce, then the entry), which waits while another connection
    holds the write lock (a backup, the daemon's own writes; busy_timeout 5 s). That wait must not be on
    paho's network thread, which alone sends what the bridge publishes (and the keep-alive pings: after
    about 4 s without one mosquitto 2.0 drops the gateway, offline)."""
    store_path = tmp_path / "store.sqlite"
    Store(store_path).close()
    nonces = NonceStore(store_path, window_ms=35_000)  # the daemon keeps them in the store file too

    def handle(cmd: Command) -> CommandOutcome:  # what the daemon does (ManualDesk.remote_command)
        done, detail = apply_list_command(store_path, cmd.action, cmd.args or {}, f"mqtt:{cmd.nonce}")
        return CommandOutcome(done, detail)

    bridge = bridge_for(broker, "gw-lock", on_command=handle, nonces=nonces).start()
    watcher = Watcher(broker, "parkgate/gw-lock/#")
    entry, topic = "0x" + "ab" * 32, "parkgate/gw-lock/cmd/*"
    lock = sqlite3.connect(store_path, isolation_level=None)
    try:
        assert bridge.wait_subscribed(10), bridge.last_connect_error
        lock.execute("BEGIN IMMEDIATE")  # the write lock, held about 4.5 s (< busy_timeout)
        watcher.publish(topic, sign_command(KEY, "gw-lock", "*", "list-add", wall_clock_ms(),
                                            args={"list": "deny", "entry": entry}))
        wait_until(lambda: watcher.on(topic), what="the command at the broker")
        time.sleep(1)  # the bridge has it too, and waits for the lock
        assert bridge.publish_read({"lane": "in-1", "confidence": 0.9})
        wait_until(lambda: watcher.on("parkgate/gw-lock/reads"), 3, what="the read while the store is locked")
        assert not watcher.on("parkgate/gw-lock/cmd/result")
        lock.execute("ROLLBACK")
        wait_until(lambda: watcher.on("parkgate/gw-lock/cmd/result"), what="the list command's result")
        result = json.loads(watcher.on("parkgate/gw-lock/cmd/result")[0])
        assert result["ok"] and result["action"] == "list-add", result
        with Store(store_path) as store:
            assert [e.entry for e in store.list_entries("deny")] == [entry]
    finally:
        lock.close()
        watcher.close()
        bridge.stop()
        nonces.close()


def test_commands_queued_or_arriving_while_the_bridge_stops_are_each_answered_stopping(
        broker: MosquittoBroker) -> None:
    """The broker has every command it delivered acknowledged (gone for good): at stop, each still
    queued behind a slow ``on_command``, and each arriving until the disconnect, is answered
    ``stopping`` on cmd/result (was: dropped with a count in the log, or without a word)."""
    started, release = threading.Event(), threading.Event()

    def slow(cmd: Command) -> CommandOutcome:
        started.set()
        release.wait(30)
        return CommandOutcome(True, "queued")

    bridge = bridge_for(broker, "gw-stop", on_command=slow).start()
    watcher = Watcher(broker, "parkgate/gw-stop/cmd/result")
    results = "parkgate/gw-stop/cmd/result"
    stopper = threading.Thread(target=bridge.stop, kwargs={"timeout": 30})  # waits for on_command
    try:
        assert bridge.wait_subscribed(10), bridge.last_connect_error
        for _ in range(4):  # the first runs (and waits), three wait in the queue behind it
            watcher.publish("parkgate/gw-stop/cmd/in-1", sign_command(KEY, "gw-stop", "in-1", "open",
                                                                      wall_clock_ms()))
        assert started.wait(10), "the first command never reached on_command"
        wait_until(lambda: bridge._received.qsize() == 3, what="three commands queued behind it")
        stopper.start()
        wait_until(bridge._stopping.is_set, what="stop() under way")  # it waits for the command thread
        watcher.publish("parkgate/gw-stop/cmd/out-1", sign_command(KEY, "gw-stop", "out-1", "open",
                                                                   wall_clock_ms()))
        wait_until(lambda: watcher.on(results), 20, what="the late command's answer while on_command runs")
        release.set()
        stopper.join(30)
        assert not stopper.is_alive()
        wait_until(lambda: len(watcher.on(results)) == 5, what="five command results")
        outcomes = [json.loads(p) for p in watcher.on(results)]
        stopping = {"ok": False, "reason": "stopping"}
        assert outcomes[0] == {**stopping, "lane": "out-1"}  # arrived after stop began: refused at once
        assert outcomes[1]["ok"] and outcomes[1]["action"] == "open"
        assert outcomes[2:] == [{**stopping, "lane": "in-1"}] * 3  # queued behind it, in order
        assert bridge.stats["cmd_rejected.stopping"] == 4 and bridge.stats["cmd_accepted"] == 1
    finally:
        release.set()
        watcher.close()
        if stopper.ident is None:
            bridge.stop()
        stopper.join(15)
