"""MQTT for the gateway: availability/status/lane state, the durable event outbox, plate reads,
Home Assistant discovery and HMAC-signed remote commands. See docs/mqtt.md.

Importing this package loads no I/O module: the broker bridge (paho) and the nonce store (sqlite3)
load on first use of their names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edge.mqtt.commands import (
    Command,
    CommandPolicy,
    Rejection,
    generate_key,
    load_key,
    sign_command,
    verify_command,
)
from edge.mqtt.outbox import OutboxPort, OutboxPublisher
from edge.mqtt.privacy import present_plate, redact_payload
from edge.mqtt.topics import Topics, discovery_messages

if TYPE_CHECKING:
    from edge.mqtt.bridge import BridgeTimings, CommandOutcome, MqttBridge
    from edge.mqtt.nonces import NonceStore
    from edge.mqtt.wiring import bridge_from_config, mqtt_config_from_url

_LAZY = {"BridgeTimings": "edge.mqtt.bridge", "CommandOutcome": "edge.mqtt.bridge",
         "MqttBridge": "edge.mqtt.bridge", "NonceStore": "edge.mqtt.nonces",
         "bridge_from_config": "edge.mqtt.wiring", "mqtt_config_from_url": "edge.mqtt.wiring"}

__all__ = [
    "BridgeTimings", "Command", "CommandOutcome", "CommandPolicy", "MqttBridge", "NonceStore", "OutboxPort",
    "OutboxPublisher", "Rejection", "Topics", "bridge_from_config", "discovery_messages", "generate_key",
    "load_key", "mqtt_config_from_url", "present_plate", "redact_payload", "sign_command", "verify_command",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edge.mqtt' has no attribute {name!r}")
