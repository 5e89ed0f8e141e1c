"""`parkgate doctor` checks of the MQTT link (found by ``edge.doctor.discover_checks``): the command key
loads, and the broker accepts a TLS connection and the configured login.

The probe connects with its own client id (``<client_id>-doctor``) so a running daemon's session is not
taken over, sends CONNECT, waits for CONNACK and disconnects; it publishes nothing.
"""

from __future__ import annotations

import threading
from typing import Any

from edge.config import Config, ConfigError, read_secret
from edge.doctor import CheckResult, register_check
from edge.mqtt.probe import client_for, transport_problem

CONNACK_TIMEOUT_S = 5.0


@register_check("mqtt command key")
def check_command_key(config: Config) -> CheckResult:
    if not config.mqtt.enabled:
        return CheckResult.skip("mqtt.enabled is false")
    from edge.mqtt.commands import load_key

    path = config.mqtt.command_key_file
    if path is None:  # the config refuses this when mqtt is enabled; kept for a config built otherwise
        return CheckResult.fail("mqtt.command_key_file is not set",
                                "make one with parkgate mqtt keygen --out FILE")
    try:
        load_key(path)
    except (ValueError, OSError) as exc:
        return CheckResult.fail(f"mqtt.command_key_file: {exc}",
                                "make one with parkgate mqtt keygen --out FILE (the operator signs remote "
                                "commands with the same key)")
    return CheckResult.ok(f"{path} holds a command key")


@register_check("mqtt broker")
def check_broker(config: Config) -> CheckResult:
    """CONNECT over TLS (when mqtt.tls.enabled) with the configured user and password; CONNACK success."""
    m = config.mqtt
    if not m.enabled:
        return CheckResult.skip("mqtt.enabled is false")
    where = f"{m.host}:{m.port} ({'TLS' if m.tls.enabled else 'plain TCP'})"
    try:
        password = read_secret(m.password_file, "mqtt.password_file") if m.password_file else None
    except ConfigError as exc:
        return CheckResult.fail(str(exc).splitlines()[-1].strip(), "write the broker password into "
                                "mqtt.password_file")
    problem = transport_problem(m, timeout_s=CONNACK_TIMEOUT_S)
    if problem is not None:
        return CheckResult.fail(f"{where}: {problem}", problem.fix)
    try:
        answer = _connack(config, password)
    except (OSError, ValueError) as exc:  # the transport worked a moment ago
        return CheckResult.fail(f"{where}: {type(exc).__name__}: {exc}", "run the doctor again; if it stays, "
                                "check the broker's log")
    if answer is None:
        return CheckResult.fail(f"{where}: no CONNACK within {CONNACK_TIMEOUT_S:.0f} s",
                                "a TLS listener while mqtt.tls.enabled = false, or not an MQTT broker: check "
                                "mqtt.port and mqtt.tls.enabled")
    if answer:
        user = m.username or "(anonymous)"
        return CheckResult.fail(f"{where}: the broker refused user {user}: {answer}",
                                "check mqtt.username and the password in mqtt.password_file against the "
                                "broker's password file (mosquitto_passwd) and ACL")
    return CheckResult.ok(f"{where}: connected as {m.username or '(anonymous)'}")


def _connack(config: Config, password: str | None) -> str | None:
    """'' when the broker accepted the CONNECT, its reason when it refused, None when it never answered.
    Socket and TLS errors raise (OSError, ssl.SSLError); unusable TLS files raise ValueError."""
    client = client_for(config.mqtt, f"{config.mqtt_client_id}-doctor", password)
    answered = threading.Event()
    result: dict[str, str] = {}

    def on_connect(client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        result["reason"] = str(reason_code) if reason_code.is_failure else ""
        answered.set()

    client.on_connect = on_connect
    client.connect(config.mqtt.host, config.mqtt.port, keepalive=10)  # TCP and the TLS handshake happen here
    client.loop_start()
    try:
        answered.wait(CONNACK_TIMEOUT_S)
    finally:
        client.disconnect()
        client.loop_stop()
    return result.get("reason")
