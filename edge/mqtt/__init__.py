"""MQTT for the gateway: availability/status/lane state, the durable event outbox, plate reads,
Home Assistant discovery and HMAC-signed remote commands. See docs/mqtt.md."""

from edge.mqtt.bridge import CommandOutcome, MqttBridge
from edge.mqtt.commands import (
    Command,
    CommandPolicy,
    Rejection,
    generate_key,
    load_key,
    sign_command,
    verify_command,
)
from edge.mqtt.nonces import NonceStore
from edge.mqtt.outbox import OutboxPort, OutboxPublisher
from edge.mqtt.privacy import present_plate, redact_payload
from edge.mqtt.settings import MqttSettings, settings_from_url
from edge.mqtt.topics import Topics, discovery_messages

__all__ = [
    "Command", "CommandOutcome", "CommandPolicy", "MqttBridge", "MqttSettings", "NonceStore", "OutboxPort",
    "OutboxPublisher", "Rejection", "Topics", "discovery_messages", "generate_key", "load_key",
    "present_plate", "redact_payload", "settings_from_url", "sign_command", "verify_command",
]
