"""The gateway's MQTT connection: availability (LWT), retained status and lane state, the durable
event outbox, plate reads, Home Assistant discovery and signed remote commands.

Imperative shell around the pure parts (``topics``, ``privacy``, ``commands``, ``outbox``). Threads:
paho's network thread runs the callbacks and must never wait (it alone sends, keep-alive pings
included): it rate-limits a command and queues it. One command thread verifies the queued commands in
order (the replay cache is SQLite), hands each accepted one to ``on_command`` and publishes its result,
so ``on_command`` may write the store (a list command) but holds up the commands behind it while it
runs: put slow work (a gate) on the daemon's own queue. One pump thread owns the outbox
(``open_outbox`` is called in that thread, because a ``Store`` is confined to the thread that opened
it). Wiring::

    bridge = MqttBridge(cfg.mqtt, cfg.gateway.id, key, lanes=["in-1", "out-1"], password=password,
                        on_command=queue_command, open_outbox=lambda: Store(db_path),
                        nonces=NonceStore(db_path, window_ms))

(``edge.mqtt.wiring.bridge_from_config`` does this for the daemon.) The bridge reads the config's
``[mqtt]`` section itself; :class:`BridgeTimings` holds its own timings and limits.
    bridge.start(); ...; bridge.notify_outbox()  # after recording an event; bridge.stop()
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from edge.config import RESERVED_LANE_NAMES, MqttConfig
from edge.mqtt.commands import (
    ALL_LANES,
    MIN_KEY_BYTES,
    Command,
    CommandPolicy,
    Freshness,
    Rejection,
    verify_command,
)
from edge.mqtt.nonces import NonceStore
from edge.mqtt.outbox import OutboxPort, OutboxPublisher
from edge.mqtt.privacy import redact_payload
from edge.mqtt.probe import client_for, transport_problem
from edge.mqtt.topics import OFFLINE, ONLINE, Topics, check_topic_part, discovery_messages
from edge.store import wall_clock_ms
from edge.throttle import Throttle

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Received:
    """A message on a command topic, queued for the command thread."""

    topic: str
    lane: str
    payload: bytes
    retain: bool


@dataclass(frozen=True)
class CommandOutcome:
    ok: bool
    detail: str = ""


CommandHandler = Callable[[Command], CommandOutcome]

_STOPPING = Rejection("stopping", "the bridge is stopping; the command was not executed, send it again")


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _reject_everything(cmd: Command) -> CommandOutcome:
    return CommandOutcome(False, "remote commands are not enabled on this gateway")


@dataclass(frozen=True)
class BridgeTimings:
    """The bridge's own timings and limits (not operator settings: those are the config's ``[mqtt]``)."""

    keepalive_s: int = 30
    command_max_skew_ms: int = 5_000
    command_max_bytes: int = 1024
    outbox_window: int = 16
    reconnect_min_s: int = 1
    reconnect_max_s: int = 30
    refused_retry_s: int = 5
    # MQTT 5 CONNECT "Maximum Packet Size": the broker must not send us a bigger packet (it drops it for
    # this client instead), so a 250 MB command never reaches paho, which buffers a whole packet.
    max_packet_bytes: int = 65_536
    # Commands per command topic (lane): ``commands_per_s`` on average, ``command_burst`` at once; the
    # rest are counted (``cmd_rejected.rate_limited``) and dropped unverified and unanswered.
    commands_per_s: int = 2
    command_burst: int = 20
    # Log lines about rejected commands: ``rejection_logs_burst`` per reason, then one per
    # ``rejection_log_every_s`` saying how many it stands for; the counters count every one.
    rejection_logs_burst: int = 5
    rejection_log_every_s: int = 60
    # Retained commands already refused (topic and payload digests, the oldest forgotten first): the broker
    # sends them again at every reconnect, and they are refused once, not at each.
    retained_remembered: int = 256
    # Commands queued for the command thread (verified, acted on and answered one by one, in order); one
    # more is refused at once, ahead of their results (``cmd_rejected.busy``); at stop, those still queued
    # are answered ``stopping``.
    command_queue: int = 64

    def __post_init__(self) -> None:
        positive = ("keepalive_s", "command_max_bytes", "outbox_window", "reconnect_min_s", "refused_retry_s",
                    "max_packet_bytes", "commands_per_s", "command_burst", "rejection_logs_burst",
                    "rejection_log_every_s", "retained_remembered", "command_queue")
        for name in positive:
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                raise ValueError(f"{name} {getattr(self, name)!r} must be a positive integer")
        if self.command_max_skew_ms < 0 or self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("command_max_skew_ms must be >= 0 and reconnect_max_s >= reconnect_min_s")


class MqttBridge:
    def __init__(self, config: MqttConfig, gateway_id: str, key: bytes, lanes: Iterable[str], *,
                 password: str | None = None, timings: BridgeTimings = BridgeTimings(),
                 on_command: CommandHandler = _reject_everything,
                 open_outbox: Callable[[], OutboxPort] | None = None,
                 nonces: NonceStore | None = None,
                 clock_ms: Callable[[], int] = wall_clock_ms, poll_s: float = 1.0,
                 time_trusted: Callable[[], bool] = lambda: True, future_when_untrusted: bool = True) -> None:
        self.config = config
        self.timings = timings
        self.client_id = config.client_id or f"parkgate-{gateway_id}"
        self._password = password
        self.topics = Topics(config.topic_prefix, gateway_id)
        self.lanes = tuple(self._checked_lane(lane) for lane in lanes)
        self.policy = CommandPolicy(gateway_id, frozenset(self.lanes), config.command_max_age_s * 1000,
                                    timings.command_max_skew_ms, timings.command_max_bytes,
                                    future_when_untrusted)
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"gateway key is {len(key)} bytes, at least {MIN_KEY_BYTES} required")
        self._key = key
        self._on_command = on_command
        self._open_outbox = open_outbox
        self.nonces = nonces if nonces is not None else NonceStore(":memory:", self.policy.replay_window_ms)
        self._clock_ms = clock_ms  # the gateway's best time (edge.clock) in the daemon
        self._time_trusted = time_trusted
        self._poll_s = poll_s
        self.stats: Counter[str] = Counter()
        self._command_limit = Throttle(timings.commands_per_s, timings.command_burst)
        self._rejection_logs = Throttle(1 / timings.rejection_log_every_s, timings.rejection_logs_burst)
        self._stats_lock = threading.Lock()
        self._log_lock = threading.Lock()  # _rejection_logs, used by paho's thread and the command thread
        self.last_connect_error: str | None = None
        self._retained: dict[str, bytes] = {}
        self._retained_lock = threading.Lock()
        self._refused_retained: OrderedDict[bytes, None] = OrderedDict()  # paho's thread only
        self._acks: queue.SimpleQueue[tuple[int, str | None]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._subscribed = threading.Event()  # the broker acknowledged the command subscription
        self._pump: threading.Thread | None = None
        self._received: queue.Queue[_Received] = queue.Queue(timings.command_queue)
        self._queue_lock = threading.Lock()  # a command is queued before stop() drains, or refused
        self._commander: threading.Thread | None = None
        self.publisher: OutboxPublisher | None = None  # set by the pump thread
        self.inflight_limit = self._own_inflight_limit  # lowered to the broker's Receive Maximum
        self._client = self._make_client()

    # -- set-up ------------------------------------------------------------------------------------

    @staticmethod
    def _checked_lane(lane: str) -> str:
        check_topic_part("lane", lane)
        if lane in RESERVED_LANE_NAMES:  # `config check` refuses it too
            raise ValueError(f"lane {lane!r} would clash with the cmd/{lane} topic; rename the lane")
        return lane

    def _make_client(self) -> mqtt.Client:
        m, tls, t = self.config, self.config.tls, self.timings
        try:
            client: mqtt.Client = client_for(m, self.client_id, self._password)
        except ValueError as exc:
            raise ValueError(f"mqtt TLS files (ca_file={tls.ca_file}, cert_file={tls.cert_file}, "
                             f"key_file={tls.key_file}) are unusable: {exc.__cause__ or exc}") from exc
        client.will_set(self.topics.availability, OFFLINE, qos=1, retain=True)
        client.max_inflight_messages_set(self.inflight_limit)
        client.reconnect_delay_set(t.reconnect_min_s, t.reconnect_max_s)
        client.on_connect = self._handle_connect
        client.on_connect_fail = self._handle_connect_fail
        client.on_disconnect = self._handle_disconnect
        client.on_publish = self._handle_publish
        client.on_message = self._handle_message
        client.on_subscribe = self._handle_subscribe
        return client

    def _count(self, name: str, n: int = 1) -> None:
        with self._stats_lock:
            self.stats[name] += n

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> MqttBridge:
        """Connect in the background (paho retries with back-off) and start the outbox pump."""
        self._stopping.clear()
        properties = Properties(PacketTypes.CONNECT)
        properties.MaximumPacketSize = self.timings.max_packet_bytes
        self._client.connect_async(self.config.host, self.config.port, self.timings.keepalive_s,
                                   properties=properties)
        self._client.loop_start()
        self._commander = threading.Thread(target=self._command_loop, name="mqtt-commands", daemon=True)
        self._commander.start()
        if self._open_outbox is not None:
            self._pump = threading.Thread(target=self._pump_loop, name="mqtt-outbox", daemon=True)
            self._pump.start()
        return self

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def wait_subscribed(self, timeout: float) -> bool:
        """True once the broker acknowledged this connection's command subscription: a command published
        before that is not delivered to the gateway (the broker had no subscriber for it yet)."""
        return self._subscribed.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def health(self) -> dict[str, Any]:
        """For status messages, ``parkgate doctor`` and metrics: connection state and counters."""
        with self._stats_lock:
            counters = dict(self.stats)
        return {"connected": self.connected, "last_connect_error": self.last_connect_error,
                "broker": f"{self.config.host}:{self.config.port}", "counters": counters}

    def stop(self, timeout: float = 5.0) -> None:
        """Refuse the commands still queued (``stopping``), say ``offline`` (retained), disconnect and stop;
        unacknowledged rows stay in the outbox."""
        with self._queue_lock:
            self._stopping.set()
        self._wake.set()
        if self._pump is not None:
            self._pump.join(timeout)
            self._pump = None
        if self._commander is not None:
            self._commander.join(timeout)
            self._commander = None
        self._refuse_queued()
        if self._client.is_connected():
            info = self._client.publish(self.topics.availability, OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError) as exc:
                log.warning("could not publish offline before disconnecting: %s", exc)
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()
        self._subscribed.clear()

    def __enter__(self) -> MqttBridge:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what the daemon publishes -----------------------------------------------------------------

    def publish_status(self, status: dict[str, Any]) -> None:
        """Gateway status JSON, retained (re-sent after every reconnect)."""
        self._publish_retained(self.topics.status, _json(status))

    def publish_lane_state(self, lane: str, state: dict[str, Any]) -> None:
        """Lane state JSON (should carry ``state`` for Home Assistant), retained."""
        self._publish_retained(self.topics.lane_state(self._checked_lane(lane)), _json(state))

    def publish_read(self, read: dict[str, Any]) -> bool:
        """A plate read (plate redacted per settings), QoS 1 best effort: dropped when offline."""
        if not self.connected:
            self._count("reads_dropped_offline")
            return False
        body = redact_payload(read, self.config.plate_privacy, self._key)
        self._client.publish(self.topics.reads, _json(body), qos=1)
        self._count("reads_published")
        return True

    def publish_alert(self, alert: dict[str, Any]) -> bool:
        """An alert (``code``, ``lane``, ``detail``, ``at_ms``), QoS 1 best effort: dropped when offline
        (the status keeps the alert counts, retained). No plate may be in it."""
        if not self.connected:
            self._count("alerts_dropped_offline")
            return False
        self._client.publish(self.topics.alerts, _json(alert), qos=1)
        self._count("alerts_published")
        return True

    def notify_outbox(self) -> None:
        """Wake the pump now (new rows were recorded) instead of at its next poll."""
        self._wake.set()

    def _publish_retained(self, topic: str, payload: bytes) -> None:
        with self._retained_lock:
            self._retained[topic] = payload
            if self.connected:
                self._client.publish(topic, payload, qos=1, retain=True)

    # -- paho callbacks (network thread) -----------------------------------------------------------

    def _handle_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                        properties: Any) -> None:
        if reason_code.is_failure:
            self._count("connect_failed")
            self._set_connect_error(str(reason_code), f"broker {self.config.host}:{self.config.port} refused "
                                                      f"the connection: {reason_code}")
            return
        self.last_connect_error = None
        self._count("connects")
        self._honour_receive_maximum(client, properties)
        # retainAsPublished: a command published with the retain flag shows it live too (refused at once),
        # with a broker that honours it (mosquitto 2); one that ignores it sends the live copy with retain 0
        client.subscribe(self.topics.command_filter,
                         options=SubscribeOptions(qos=1, noLocal=True, retainAsPublished=True))
        client.publish(self.topics.availability, ONLINE, qos=1, retain=True)
        if self.config.discovery:
            for topic, payload in discovery_messages(self.topics, self.lanes, self.config.discovery_prefix,
                                                     self.config.ha_open_button_topic):
                client.publish(topic, payload, qos=1, retain=True)
        with self._retained_lock:
            for topic, payload in self._retained.items():
                client.publish(topic, payload, qos=1, retain=True)
            self._connected.set()
        log.info("mqtt connected to %s:%s as %s", self.config.host, self.config.port, self.client_id)
        self._wake.set()

    @property
    def _own_inflight_limit(self) -> int:
        """Unacknowledged QoS 1 messages we allow: the outbox window and room for state and discovery."""
        return self.timings.outbox_window + 8

    def _honour_receive_maximum(self, client: mqtt.Client, properties: Any) -> None:
        """Keep at most the broker's Receive Maximum (MQTT 5 CONNACK) QoS 1 messages unacknowledged: a
        broker that enforces it (HiveMQ's default is 10; ours, the outbox window + 8, is 24) disconnects a
        client sending more, and under a backlog the bridge would reconnect and resend for ever. paho does
        not honour it, and its setter refuses while connected (its doubt is about changes between 0,
        unlimited, and a limit; both values here are limits), so the limit is set on the attribute, here
        before anything of this connection is published: paho queues the rest and sends each as a PUBACK
        frees room."""
        ours = self._own_inflight_limit
        theirs = getattr(properties, "ReceiveMaximum", None)
        limit = min(ours, theirs) if isinstance(theirs, int) and theirs > 0 else ours
        if limit != self.inflight_limit:
            log.info("mqtt: at most %d unacknowledged messages (the broker's Receive Maximum is %s)", limit,
                     theirs if theirs is not None else "not given")
        client._max_inflight_messages = limit  # paho's own attribute: see above
        self.inflight_limit = limit

    def _handle_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        """TCP or TLS failed (paho says no more): find out which, for the status and the log."""
        self._count("connect_failed")
        problem = transport_problem(self.config)
        self._set_connect_error(str(problem) if problem else f"connection to {self.config.host}:"
                                f"{self.config.port} failed")

    def _set_connect_error(self, error: str, line: str | None = None) -> None:
        """``error`` for the status; logged (as ``line`` when given) when it changes, not at every retry."""
        if error != self.last_connect_error:
            log.error("mqtt: %s", line or error)
        self.last_connect_error = error

    def _handle_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                           properties: Any) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        self._subscribed.clear()
        if was_connected and not self._stopping.is_set():
            self._count("disconnects")
            log.warning("mqtt disconnected (%s); outbox rows wait for the reconnect", reason_code)
        elif not was_connected and not self._stopping.is_set() and self.last_connect_error is None:
            # the socket opened but no CONNACK came: the broker refused our client certificate (TLS 1.3
            # says so after the handshake: the probe finds out), a TLS listener while tls is off, or no broker
            self._count("connect_failed")
            problem = transport_problem(self.config)
            self._set_connect_error(str(problem) if problem else f"{self.config.host}:{self.config.port} "
                                    f"closed the connection before CONNACK ({reason_code}); a TLS port with "
                                    f"mqtt.tls.enabled = {str(self.config.tls.enabled).lower()}?")

    def _handle_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: list[Any],
                          properties: Any) -> None:
        refused = [str(rc) for rc in reason_codes if rc.is_failure]
        if not refused:
            self._subscribed.set()
            return
        self._count("subscribe_refused")
        log.error("broker refused the command subscription %s (%s): remote commands cannot arrive; "
                  "check the broker ACL", self.topics.command_filter, ", ".join(refused))

    def _handle_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason_code: Any,
                        properties: Any) -> None:
        self._acks.put((mid, str(reason_code) if reason_code.is_failure else None))
        self._wake.set()

    def _handle_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            self._process_message(message)
        except Exception:  # an exception here would stop paho's network thread for good
            self._count("cmd_rejected.internal_error")
            log.exception("could not process a message on the command topic")

    def _process_message(self, message: mqtt.MQTTMessage) -> None:
        topic_lane = self.topics.lane_of_command_topic(message.topic)
        if topic_lane is None or self._retained_again(message):
            return
        if not self._command_limit.allow(self._limit_key(message.topic, topic_lane)):
            self._count("cmd_rejected.rate_limited")
            self._log_rejection(message.topic, "rate_limited", "too many commands on this topic")
            return
        if message.retain:
            self._remember_retained(message)
        refused = self._enqueue(_Received(message.topic, topic_lane, bytes(message.payload),
                                          bool(message.retain)))
        if refused is not None:
            self._refuse(message.topic, topic_lane, refused)

    def _enqueue(self, received: _Received) -> Rejection | None:
        """Queue a command for the command thread, or say why not: the bridge is stopping (stop() answers
        what is queued), or the queue is full (answered at once, ahead of the queued commands' results)."""
        with self._queue_lock:
            if self._stopping.is_set():
                return _STOPPING
            try:
                self._received.put_nowait(received)
            except queue.Full:
                return Rejection("busy", f"{self.timings.command_queue} commands are already waiting for "
                                         "the command thread")
        return None

    # -- command thread ----------------------------------------------------------------------------

    def _command_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                received = self._received.get(timeout=self._poll_s)
            except queue.Empty:
                continue
            try:
                self._execute(received)
            except Exception:  # the thread must go on with the next command
                self._count("cmd_rejected.internal_error")
                log.exception("could not process the command on %s", received.topic)

    def _refuse_queued(self) -> None:
        """At stop: answer each command still queued (the broker has it acknowledged: gone for good)."""
        while True:
            try:
                received = self._received.get_nowait()
            except queue.Empty:
                return
            self._refuse(received.topic, received.lane, _STOPPING)

    def _execute(self, received: _Received) -> None:
        """Verify one command (the replay cache may wait for the store), act on it and answer it."""
        now = self._clock_ms()
        try:
            fresh = Freshness(now, self._time_trusted(), self.nonces.min_ts_ms)
            verdict = verify_command(received.payload, self._key, fresh, self.nonces, self.policy,
                                     received.lane)
        except Exception:  # verify_command is fuzzed not to raise; the nonce store (SQLite) might
            log.exception("could not verify command on %s", received.topic)
            verdict = Rejection("internal_error", "verification failed, see log")
        if received.retain:
            verdict = self._retained_rejection(received.topic, verdict)
        if isinstance(verdict, Rejection):
            self._keep_nonce(verdict, now)
            self._refuse(received.topic, received.lane, verdict)
        else:
            self._accept(verdict, now)

    def _accept(self, verdict: Command, now: int) -> None:
        try:
            self.nonces.remember(verdict.nonce, verdict.ts_ms, now)  # before acting: no replay after a crash
        except Exception:
            log.exception("could not record nonce %s; command not executed", verdict.nonce)
            self._count("cmd_rejected.internal_error")
            self._publish_result({"ok": False, "lane": verdict.lane, "reason": "internal_error"})
            return
        try:
            outcome = self._on_command(verdict)
        except Exception as exc:
            log.exception("command handler failed for %s", verdict)
            outcome = CommandOutcome(False, f"handler error: {type(exc).__name__}")
        self._count("cmd_accepted")
        log.info("accepted command %s on lane %s (nonce %s): ok=%s %s", verdict.action, verdict.lane,
                 verdict.nonce, outcome.ok, outcome.detail)
        self._publish_result({"ok": outcome.ok, "lane": verdict.lane, "action": verdict.action,
                              "nonce": verdict.nonce, "detail": outcome.detail})

    def _refuse(self, topic: str, lane: str, rejection: Rejection) -> None:
        self._count(f"cmd_rejected.{rejection.reason}")
        self._log_rejection(topic, rejection.reason, rejection.detail)
        self._publish_result({"ok": False, "lane": lane, "reason": rejection.reason})

    @staticmethod
    def _retained_key(message: mqtt.MQTTMessage) -> bytes:
        return hashlib.sha256(message.topic.encode() + b"\0" + bytes(message.payload)).digest()

    def _retained_again(self, message: mqtt.MQTTMessage) -> bool:
        """True for a retained message to ignore: an empty one (it clears the retained command at the
        broker) or a retained command already refused (the broker sends it again at every reconnect)."""
        if not message.retain:
            return False
        if not message.payload:
            return True
        key = self._retained_key(message)
        if key in self._refused_retained:
            self._refused_retained.move_to_end(key)
            log.debug("retained command on %s refused before: ignored", message.topic)
            return True
        return False

    def _remember_retained(self, message: mqtt.MQTTMessage) -> None:
        self._refused_retained[self._retained_key(message)] = None
        while len(self._refused_retained) > self.timings.retained_remembered:
            self._refused_retained.popitem(last=False)

    @staticmethod
    def _retained_rejection(topic: str, verdict: Command | Rejection) -> Rejection:
        """A retained command is refused whatever it holds: the broker would send it again at every
        reconnect. Its nonce is kept when it is correctly signed (so it cannot be sent again unretained)."""
        command = verdict if isinstance(verdict, Command) else verdict.command
        return Rejection("retained", f"commands must not be retained (the broker keeps them and sends them "
                                     f"again at every reconnect); clear it with an empty retained message: "
                                     f"mosquitto_pub -r -n -t '{topic}'", command)

    def _limit_key(self, topic: str, lane: str) -> str:
        """The rate limit's bucket for a command topic: its own for each lane of this gateway and ``*``,
        one for all other topics (they can never carry an accepted command), so that a flood spread over
        made-up lanes (cmd/x0, cmd/x1, ...) gets no fresh burst per topic."""
        return topic if lane in self.lanes or lane == ALL_LANES else self.topics.command("<other>")

    def _keep_nonce(self, rejection: Rejection, now_ms: int) -> None:
        """A correctly signed command refused (stale, future, ...): keep its nonce all the same, so that a
        clock step can never make it acceptable later (edge.mqtt.nonces)."""
        cmd = rejection.command
        if cmd is None or rejection.reason == "replayed":
            return
        try:
            self.nonces.remember(cmd.nonce, cmd.ts_ms, now_ms)
        except Exception:  # noqa: BLE001 - the command is refused anyway
            log.exception("could not keep the nonce of refused command %s", cmd.nonce)

    def _log_rejection(self, topic: str, reason: str, detail: str) -> None:
        """One WARNING line per rejection until the reason's burst is spent, then one per interval
        that says how many rejections it stands for (all are in ``stats``)."""
        with self._log_lock:
            allowed = self._rejection_logs.allow(reason)
            more = self._rejection_logs.take_refused(reason) if allowed else 0
        if allowed:
            log.warning("rejected command on %s: %s (%s)%s", topic, reason, detail,
                        f"; {more} more rejected for this reason since the last line" if more else "")

    def _publish_result(self, body: dict[str, Any]) -> None:
        self._client.publish(self.topics.command_result, _json(body), qos=1)

    # -- outbox pump thread ------------------------------------------------------------------------

    def _publish_event(self, topic: str, payload: bytes) -> int | None:
        info = self._client.publish(topic, payload, qos=1)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            return None  # NO_CONN: paho keeps the message and sends it on reconnect
        return info.mid

    def _drain_acks(self) -> list[tuple[int, str | None]]:
        acks = []
        while True:
            try:
                acks.append(self._acks.get_nowait())
            except queue.Empty:
                return acks

    def _pump_loop(self) -> None:
        outbox = self._open_outbox_until_stopped()
        if outbox is None:
            return
        publisher = OutboxPublisher(outbox, self._publish_event, self.topics.events,
                                    lambda p: redact_payload(p, self.config.plate_privacy, self._key),
                                    self.timings.outbox_window)
        self.publisher = publisher
        try:
            while not self._stopping.is_set():
                self._wake.wait(self._poll_s)
                self._wake.clear()
                self._pump_step(publisher)
        finally:
            close = getattr(outbox, "close", None)
            if callable(close):
                close()

    def _open_outbox_until_stopped(self) -> OutboxPort | None:
        assert self._open_outbox is not None
        while not self._stopping.is_set():
            try:
                return self._open_outbox()
            except Exception:
                self._count("outbox_errors")
                log.exception("cannot open the outbox; retrying in %d s", self.timings.refused_retry_s)
                self._stopping.wait(self.timings.refused_retry_s)
        return None

    def _pump_step(self, publisher: OutboxPublisher) -> None:
        try:
            refused_before = publisher.refused
            publisher.acknowledge(self._drain_acks())
            if self.connected:
                self._count("events_published", publisher.fill())
            if publisher.refused > refused_before:
                self._count("events_refused", publisher.refused - refused_before)
                self._stopping.wait(self.timings.refused_retry_s)
        except Exception:
            self._count("outbox_errors")
            log.exception("outbox pump step failed; retrying")
            self._stopping.wait(self._poll_s)
