"""Build the MQTT bridge from the gateway's config (``edge.config.Config``, section ``[mqtt]``), and an
``[mqtt]`` section from a broker URL (the demo's ``--mqtt``, tests and the benchmark)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from edge.clock import TrustedClock
from edge.config import Config, MqttConfig, config_from_mapping, read_secret
from edge.mqtt.bridge import BridgeTimings, CommandHandler, MqttBridge
from edge.mqtt.commands import load_key
from edge.mqtt.nonces import NonceStore
from edge.store import Store

URL_SCHEMES = {"mqtt": False, "mqtts": True}


def bridge_from_config(cfg: Config, on_command: CommandHandler,
                       open_outbox: Callable[[], Store] | None = None, clock: TrustedClock | None = None
                       ) -> MqttBridge:
    """The bridge for ``cfg``: lanes from ``[[lanes]]``, key from ``mqtt.command_key_file``, password
    from ``mqtt.password_file``, the replay cache and (by default) the outbox in the gateway's store;
    command freshness judged against ``clock`` (the daemon's best time; the wall clock when None)."""
    m = cfg.mqtt
    if m.command_key_file is None:
        raise ValueError("mqtt.command_key_file is required when mqtt is enabled "
                         "(create one with `parkgate mqtt keygen --out FILE`)")
    password = read_secret(m.password_file, "mqtt.password_file") if m.password_file is not None else None
    timings = BridgeTimings()
    nonces = NonceStore(cfg.store_path, m.command_max_age_s * 1000 + timings.command_max_skew_ms)
    best = clock or TrustedClock(tolerance_ms=cfg.clock.behind_tolerance_s * 1000)
    return MqttBridge(m, cfg.gateway.id, load_key(m.command_key_file), [lane.name for lane in cfg.lanes],
                      password=password, timings=timings, on_command=on_command,
                      open_outbox=open_outbox or (lambda: Store(cfg.store_path)), nonces=nonces,
                      clock_ms=best.now_ms, time_trusted=lambda: best.reading().trusted,
                      future_when_untrusted=cfg.clock.untrusted_time != "strict")


def mqtt_config_from_url(url: str, **keys: Any) -> tuple[MqttConfig, str | None]:
    """``mqtts://user:pass@host:8883`` (TLS) or ``mqtt://host:1883`` -> the ``[mqtt]`` section the
    bridge reads, and the password. ``keys`` are further ``[mqtt]`` keys (``tls`` keys ``ca_file``,
    ``cert_file``, ``key_file`` may be given flat). ValueError naming the URL, or ConfigError naming
    the key, when something is bad."""
    parts = urlsplit(url)
    if parts.scheme not in URL_SCHEMES:
        raise ValueError(f"mqtt url {url!r}: scheme must be mqtt:// or mqtts://")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"mqtt url {url!r}: port is not a number 1-65535") from None
    tls_on = URL_SCHEMES[parts.scheme]
    tls = {"enabled": tls_on, **{k: str(keys.pop(k)) for k in ("ca_file", "cert_file", "key_file")
                                 if keys.get(k) is not None}}
    section = {"host": parts.hostname or "", "port": port or (8883 if tls_on else 1883), "tls": tls, **keys}
    if parts.username:
        section["username"] = unquote(parts.username)
    mqtt = config_from_mapping({"mqtt": section}, f"mqtt url {url!r}").mqtt
    return mqtt, unquote(parts.password) if parts.password else None
