"""Build the MQTT bridge from the gateway's config (``edge.config.Config``, section ``[mqtt]``).

Kept apart from ``settings`` so the pure settings carry no dependency on the config file format.
"""

from __future__ import annotations

from collections.abc import Callable

from edge.config import Config, read_secret
from edge.mqtt.bridge import CommandHandler, MqttBridge
from edge.mqtt.commands import load_key
from edge.mqtt.nonces import NonceStore
from edge.mqtt.settings import MqttSettings
from edge.store import Store


def settings_from_config(cfg: Config) -> MqttSettings:
    """The bridge settings of ``cfg``; reads the password file. ConfigError/ValueError name the key."""
    m = cfg.mqtt
    password = read_secret(m.password_file, "mqtt.password_file") if m.password_file is not None else None
    return MqttSettings(
        host=m.host, port=m.port, gateway_id=cfg.gateway.id, prefix=m.topic_prefix, username=m.username,
        password=password, tls=m.tls.enabled, ca_file=m.tls.ca_file, client_cert=m.tls.cert_file,
        client_key=m.tls.key_file, client_id=cfg.mqtt_client_id, plate_privacy=m.plate_privacy,
        discovery=m.discovery, discovery_prefix=m.discovery_prefix,
        command_max_age_ms=m.command_max_age_s * 1000,
    )


def bridge_from_config(cfg: Config, on_command: CommandHandler,
                       open_outbox: Callable[[], Store] | None = None) -> MqttBridge:
    """The bridge for ``cfg``: lanes from ``[[lanes]]``, key from ``mqtt.command_key_file``, the
    replay cache and (by default) the outbox in the gateway's store file."""
    if cfg.mqtt.command_key_file is None:
        raise ValueError("mqtt.command_key_file is required when mqtt is enabled "
                         "(create one with `parkgate mqtt keygen --out FILE`)")
    settings = settings_from_config(cfg)
    nonces = NonceStore(cfg.store_path, settings.command_max_age_ms + settings.command_max_skew_ms)
    return MqttBridge(settings, load_key(cfg.mqtt.command_key_file), [lane.name for lane in cfg.lanes],
                      on_command=on_command, open_outbox=open_outbox or (lambda: Store(cfg.store_path)),
                      nonces=nonces)
