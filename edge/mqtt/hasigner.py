"""The signing bridge for Home Assistant's open buttons (`parkgate mqtt ha-signer`).

Home Assistant cannot sign commands, and the gateway accepts only signed ones. With
``mqtt.ha_open_button_topic`` set, discovery announces an open button per lane that publishes the lane id
to that topic; this bridge, holding the command key, turns each press into a signed ``open`` on
``cmd/<lane>``. Whoever may publish to that topic may open gates: restrict it in the broker's ACL to
Home Assistant's user. Presses for unknown lanes are refused; at most one open per lane per
``min_interval_s`` is signed (a held or repeated button is one open).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from edge.config import Config, read_secret
from edge.mqtt.commands import load_key, sign_command
from edge.mqtt.probe import client_for
from edge.mqtt.topics import Topics

log = logging.getLogger(__name__)
MIN_INTERVAL_S = 2.0


def signed_open(key: bytes, gateway: str, lanes: frozenset[str], payload: bytes, now_ms: int,
                last_ms: dict[str, int], min_interval_ms: int) -> tuple[str, bytes] | None:
    """(lane, signed command) for a button press carrying a lane id, or None (unknown lane, too soon
    after the lane's previous open). Pure apart from updating ``last_ms``."""
    lane = payload.decode("utf-8", errors="replace").strip()
    if lane not in lanes:
        log.warning("ha-signer: press for unknown lane %r refused; lanes: %s", lane[:64],
                    ", ".join(sorted(lanes)))
        return None
    if now_ms - last_ms.get(lane, -min_interval_ms) < min_interval_ms:
        return None
    last_ms[lane] = now_ms
    return lane, sign_command(key, gateway, lane, "open", now_ms)


class HaSigner:
    def __init__(self, cfg: Config, clock_ms: Callable[[], int],
                 min_interval_s: float = MIN_INTERVAL_S) -> None:
        m = cfg.mqtt
        if m.ha_open_button_topic is None:
            raise ValueError("mqtt.ha_open_button_topic is not set: no button publishes anywhere")
        if m.command_key_file is None:
            raise ValueError("mqtt.command_key_file is required: the signer signs with it")
        self.topic = m.ha_open_button_topic
        self.topics = Topics(m.topic_prefix, cfg.gateway.id)
        self.gateway = cfg.gateway.id
        self.lanes = frozenset(lane.name for lane in cfg.lanes)
        self.key = load_key(m.command_key_file)
        self.clock_ms = clock_ms
        self.min_interval_ms = int(min_interval_s * 1000)
        self.last_ms: dict[str, int] = {}
        self.signed = 0
        self.subscribed = threading.Event()
        password = read_secret(m.password_file, "mqtt.password_file") if m.password_file else None
        self.client = client_for(m, f"{cfg.mqtt_client_id}-ha-signer", password)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        self.client.on_message = self._on_message
        self.config = m

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            log.error("ha-signer: broker refused the connection: %s", reason_code)
            return
        client.subscribe(self.topic, qos=1)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        command = signed_open(self.key, self.gateway, self.lanes, bytes(message.payload)[:128],
                              self.clock_ms(), self.last_ms, self.min_interval_ms)
        if command is not None:
            lane, body = command
            client.publish(self.topics.command(lane), body, qos=1)
            self.signed += 1
            log.info("ha-signer: signed an open for lane %s", lane)

    def start(self) -> HaSigner:
        self.client.connect_async(self.config.host, self.config.port, keepalive=30)
        self.client.loop_start()
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
