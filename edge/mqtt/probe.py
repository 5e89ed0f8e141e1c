"""Connecting to the broker outside the bridge: why it cannot be reached, in words (a TCP connection and,
with ``mqtt.tls.enabled``, a TLS handshake made the way paho makes them, without MQTT: paho only says
"connection failed"; the daemon's status ``mqtt.detail`` and ``parkgate doctor`` say which part failed and
what to fix), and a plain paho client with the configured TLS and login (doctor, Home Assistant signer).
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from typing import Any

from edge.config import MqttConfig

# kind -> what to do
FIXES = {
    "unreachable": "start the broker, or fix mqtt.host / mqtt.port (and the firewall between)",
    "untrusted": "set mqtt.tls.ca_file to the CA that signed the broker's certificate, and use the host name "
                 "the certificate names in mqtt.host",
    "handshake": "is the port a TLS listener? (mqtt.port, mqtt.tls.enabled; 8883 is TLS, 1883 plain); client "
                 "certificate files: mqtt.tls.cert_file/key_file",
    "files": "fix the files named under [mqtt.tls]",
    "client_cert": "give mqtt.tls.cert_file/key_file a client certificate the broker accepts: signed by the "
                   "CA the broker trusts for clients, not expired",
}
# With TLS 1.3 a broker checks the client's certificate after the handshake and says no in an alert that
# comes at the first read; a broker that took the client waits for CONNECT and sends nothing.
ALERT_WAIT_S = 0.5


@dataclass(frozen=True)
class TransportProblem:
    kind: str  # a key of FIXES
    detail: str

    @property
    def fix(self) -> str:
        return FIXES[self.kind]

    def __str__(self) -> str:
        return self.detail


def transport_problem(config: MqttConfig, timeout_s: float = 3.0) -> TransportProblem | None:
    """What stops a TCP (and TLS) connection to the broker, or None when both work (then the broker
    itself refused the login, or did not answer CONNECT)."""
    where = f"{config.host}:{config.port}"
    try:
        sock = socket.create_connection((config.host, config.port), timeout=timeout_s)
    except OSError as exc:
        return TransportProblem("unreachable", f"cannot connect to {where}: {exc.strerror or exc}")
    with sock:
        if not config.tls.enabled:
            return None
        tls = config.tls
        try:
            context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
            if tls.cert_file is not None:
                context.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
        except (OSError, ssl.SSLError) as exc:
            return TransportProblem("files", f"TLS files unusable (ca_file={tls.ca_file}, cert_file="
                                             f"{tls.cert_file}, key_file={tls.key_file}): {exc}")
        try:
            tls_sock = context.wrap_socket(sock, server_hostname=config.host)
        except ssl.SSLCertVerificationError as exc:
            return TransportProblem("untrusted", f"{where}: the broker's certificate is not trusted: "
                                                 f"{exc.verify_message}")
        except (ssl.SSLError, OSError) as exc:
            return TransportProblem("handshake", f"{where}: TLS handshake failed: {exc}")
        with tls_sock:
            return _client_refused(tls_sock, where)
    return None


def _client_refused(tls_sock: ssl.SSLSocket, where: str) -> TransportProblem | None:
    """The broker's refusal of the client certificate, which TLS 1.3 sends after the handshake."""
    tls_sock.settimeout(ALERT_WAIT_S)
    try:
        tls_sock.recv(1)
    except TimeoutError:  # silence: the broker waits for CONNECT
        return None
    except (ssl.SSLError, OSError) as exc:
        return TransportProblem("client_cert", f"{where}: the broker refused this client's TLS certificate: "
                                               f"{exc}")
    return None


def client_for(config: MqttConfig, client_id: str, password: str | None) -> Any:
    """A paho MQTT 5 client with the configured login and TLS (not connected). ValueError when the TLS
    files are unusable."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5)
    if config.username is not None:
        client.username_pw_set(config.username, password)
    tls = config.tls
    if tls.enabled:
        try:
            client.tls_set(ca_certs=str(tls.ca_file) if tls.ca_file else None,
                           certfile=str(tls.cert_file) if tls.cert_file else None,
                           keyfile=str(tls.key_file) if tls.key_file else None,
                           cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise ValueError(f"TLS files unusable: {exc}") from exc
    return client
