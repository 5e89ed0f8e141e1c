"""What the MQTT bridge needs to know, validated up front with errors that name the bad value."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from edge.mqtt.privacy import PLATE_PRIVACY_MODES
from edge.mqtt.topics import check_topic_part

URL_SCHEMES = {"mqtt": False, "mqtts": True}


@dataclass(frozen=True)
class MqttSettings:
    """Broker connection, topics, privacy and command limits. ``ca_file`` None = system CAs."""

    host: str
    gateway_id: str
    port: int = 8883
    prefix: str = "parkgate"
    username: str | None = None
    password: str | None = None
    tls: bool = True
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    client_id: str | None = None
    keepalive_s: int = 30
    plate_privacy: str = "hash"
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    ha_open_button_topic: str | None = None
    command_max_age_ms: int = 30_000
    command_max_skew_ms: int = 5_000
    command_max_bytes: int = 1024
    outbox_window: int = 16
    reconnect_min_s: int = 1
    reconnect_max_s: int = 30
    refused_retry_s: int = 5

    def __post_init__(self) -> None:
        problems = list(_problems(self))
        if problems:
            raise ValueError("mqtt settings: " + "; ".join(problems))

    @property
    def effective_client_id(self) -> str:
        return self.client_id or f"parkgate-{self.gateway_id}"


def _problems(s: MqttSettings) -> list[str]:
    out = []
    if not s.host:
        out.append("host is empty; give the broker's host name or IP")
    if not isinstance(s.port, int) or not 0 < s.port < 65536:
        out.append(f"port {s.port!r} is not a TCP port (1-65535)")
    for name, value in (("gateway_id", s.gateway_id), *(("prefix part", p) for p in s.prefix.split("/"))):
        try:
            check_topic_part(name, value)
        except ValueError as exc:
            out.append(str(exc))
    if s.plate_privacy not in PLATE_PRIVACY_MODES:
        out.append(f"plate_privacy {s.plate_privacy!r} is not one of {', '.join(PLATE_PRIVACY_MODES)}")
    if (s.client_cert is None) != (s.client_key is None):
        out.append("client_cert and client_key go together: give both or neither")
    if not s.tls and (s.client_cert or s.ca_file):
        out.append("ca_file/client_cert need tls = true (use an mqtts:// URL)")
    if s.password is not None and s.username is None:
        out.append("password given without username")
    positive = ("keepalive_s", "command_max_age_ms", "command_max_bytes", "outbox_window", "reconnect_min_s",
                "refused_retry_s")
    for name in positive:
        if not isinstance(getattr(s, name), int) or getattr(s, name) <= 0:
            out.append(f"{name} {getattr(s, name)!r} must be a positive integer")
    if not isinstance(s.command_max_skew_ms, int) or s.command_max_skew_ms < 0:
        out.append(f"command_max_skew_ms {s.command_max_skew_ms!r} must be an integer >= 0")
    if isinstance(s.reconnect_max_s, int) and isinstance(s.reconnect_min_s, int) \
            and s.reconnect_max_s < s.reconnect_min_s:
        out.append("reconnect_max_s must be >= reconnect_min_s")
    return out


def settings_from_url(url: str, gateway_id: str, **overrides: Any) -> MqttSettings:
    """``mqtts://user:pass@host:8883`` (TLS) or ``mqtt://host:1883`` -> settings; ValueError if bad."""
    parts = urlsplit(url)
    if parts.scheme not in URL_SCHEMES:
        raise ValueError(f"mqtt url {url!r}: scheme must be mqtt:// or mqtts://")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"mqtt url {url!r}: port is not a number 1-65535") from None
    tls = URL_SCHEMES[parts.scheme]
    base = MqttSettings(
        host=parts.hostname or "", gateway_id=gateway_id, port=port or (8883 if tls else 1883), tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )
    fields: dict[str, Any] = {k: Path(v) if k in {"ca_file", "client_cert", "client_key"} and v else v
                              for k, v in overrides.items()}
    return replace(base, **fields)
