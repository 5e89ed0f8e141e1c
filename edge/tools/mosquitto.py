"""A real mosquitto broker for tests and the demo: password auth + TLS on a free loopback port.

Everything it needs (CA, server certificate for 127.0.0.1, password file, config) is generated with
the ``openssl`` and ``mosquitto_passwd`` command-line tools into a work directory. Persistence is
off, so a restarted broker starts empty, which is what the outage tests want: nothing the gateway
sent survives on the broker, only what the gateway re-sends from its outbox.

Usage::

    with MosquittoBroker(tmp_path) as broker:
        broker.ca_file, broker.port, broker.username, broker.password
        broker.stop(); broker.start()          # an outage on the same port
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.tools.net import free_tcp_port, wait_for_tcp
from edge.tools.proc import ManagedProcess, wait_until

HOST = "127.0.0.1"
# mosquitto's default for a QoS 1 subscriber that lags: this many messages queued for it (beside 20 in
# flight); it drops the rest. Measured: 1,500 commands sent to a stopped daemon, 1,020 arrived.
QUEUED_PER_SUBSCRIBER = 1_000
CERT_DAYS = "2"


class BrokerError(RuntimeError):
    """mosquitto (or a tool it needs) is missing or did not start; the message says which."""


def publish_paced(publish: Callable[[int], None], count: int, delivered: Callable[[], float],
                  ahead: int = QUEUED_PER_SUBSCRIBER // 2, timeout_s: float = 60.0) -> None:
    """`publish(n)` for n in range(count), never more than `ahead` past what the subscriber counts it got
    (`delivered`). The broker acknowledges a publish, not its delivery: a flood faster than a busy subscriber
    is partly dropped by the broker, not by the code a test looks at (the whole suite on two cores once
    counted 9,369 of 10,001)."""
    for n in range(1, count + 1):
        publish(n - 1)
        if n % ahead:
            continue

        def caught_up(target: int = n - ahead) -> bool:
            return delivered() >= target

        if not wait_until(caught_up, timeout_s):
            raise TimeoutError(f"the subscriber counted {delivered():.0f} of {n} in {timeout_s:.0f} s")


def _require_tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/usr/local/sbin")
    if path is None:
        raise BrokerError(f"{name} not found: install it (apt-get install mosquitto openssl)")
    return path


def _run(argv: list[str], cwd: Path) -> None:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BrokerError(f"{' '.join(argv[:3])} failed ({done.returncode}): {done.stderr.strip()[-400:]}")


def _ec_key(path: Path, cwd: Path) -> None:
    _run([_require_tool("openssl"), "genpkey", "-algorithm", "EC", "-pkeyopt",
          "ec_paramgen_curve:prime256v1", "-out", str(path)], cwd)


def make_ca(workdir: Path) -> tuple[Path, Path]:
    """A throw-away certificate authority; returns (ca.crt, ca.key)."""
    crt, key = workdir / "ca.crt", workdir / "ca.key"
    _ec_key(key, workdir)
    _run([_require_tool("openssl"), "req", "-x509", "-new", "-key", str(key), "-out", str(crt),
          "-days", CERT_DAYS, "-subj", "/CN=parkgate-test-ca",
          "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign"], workdir)
    return crt, key


def issue_cert(workdir: Path, ca: tuple[Path, Path], name: str, common_name: str,
               server: bool) -> tuple[Path, Path]:
    """A certificate signed by ``ca``: for a server (SAN IP 127.0.0.1) or a client (CN = identity)."""
    crt, key, csr, ext = (workdir / f"{name}.crt", workdir / f"{name}.key", workdir / f"{name}.csr",
                          workdir / f"{name}.ext")
    _ec_key(key, workdir)
    _run([_require_tool("openssl"), "req", "-new", "-key", str(key), "-out", str(csr),
          "-subj", f"/CN={common_name}"], workdir)
    usage = "serverAuth" if server else "clientAuth"
    lines = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature,keyAgreement",
             f"extendedKeyUsage={usage}"]
    if server:
        lines.append(f"subjectAltName=IP:{HOST}")
    ext.write_text("\n".join(lines) + "\n")
    _run([_require_tool("openssl"), "x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey",
          str(ca[1]), "-CAcreateserial", "-out", str(crt), "-days", CERT_DAYS, "-extfile", str(ext)],
         workdir)
    return crt, key


@dataclass
class MosquittoBroker:
    """mosquitto with ``allow_anonymous false``, a password file and a TLS listener on 127.0.0.1.

    ``cert_listener`` adds a second TLS listener that requires a client certificate and takes the
    certificate's CN as the user name (``client_cert``/``client_key`` are issued for ``username``).
    ``acl`` is the text of an ACL file (mosquitto syntax), or None for no ACL. ``settings`` are more
    lines of mosquitto.conf, global ones (e.g. ``max_inflight_messages 3``).
    """

    workdir: Path
    username: str = "parkgate"
    password: str = field(default_factory=lambda: secrets.token_hex(12))
    extra_users: dict[str, str] = field(default_factory=dict)
    acl: str | None = None
    cert_listener: bool = False
    settings: tuple[str, ...] = ()
    port: int = 0
    cert_port: int = 0
    host: str = HOST

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_tcp_port(HOST)
        if self.cert_listener:
            self.cert_port = self.cert_port or free_tcp_port(HOST)
        ca = make_ca(self.workdir)
        self.ca_file = ca[0]
        self.server_cert, self.server_key = issue_cert(self.workdir, ca, "server", HOST, server=True)
        self.client_cert, self.client_key = issue_cert(self.workdir, ca, "client", self.username,
                                                       server=False)
        self.config_file = self._write_config()
        self._process: ManagedProcess | None = None

    @property
    def password_file(self) -> Path:
        return self.workdir / "passwd"

    def _write_passwords(self, users: dict[str, str]) -> None:
        self.password_file.write_text("")
        tool = _require_tool("mosquitto_passwd")
        for user, secret in users.items():
            _run([tool, "-b", str(self.password_file), user, secret], self.workdir)
        self.password_file.chmod(0o600)

    def set_users(self, users: dict[str, str]) -> None:
        """Replace the password file (e.g. lock a client out for a while); ``reload`` applies it live."""
        self._write_passwords(users)

    def all_users(self) -> dict[str, str]:
        return {self.username: self.password, **self.extra_users}

    def _write_config(self) -> Path:
        passwd = self.password_file
        self._write_passwords(self.all_users())
        tls = [f"cafile {self.ca_file}", f"certfile {self.server_cert}", f"keyfile {self.server_key}"]
        lines = [
            f"user {pwd.getpwuid(os.geteuid()).pw_name}",
            "per_listener_settings true",
            "persistence false",
            "log_dest stdout",
            "log_type error", "log_type warning", "log_type notice", "log_type information",
            *self.settings,
            f"listener {self.port} {HOST}",
            "allow_anonymous false",
            f"password_file {passwd}",
            *tls,
        ]
        acl_file = None
        if self.acl is not None:
            acl_file = self.workdir / "acl"
            acl_file.write_text(self.acl)
            lines.append(f"acl_file {acl_file}")
        if self.cert_listener:
            lines += [f"listener {self.cert_port} {HOST}", "allow_anonymous false", *tls,
                      "require_certificate true", "use_identity_as_username true"]
            if acl_file is not None:
                lines.append(f"acl_file {acl_file}")
        config = self.workdir / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n")
        for secret_file in (self.server_key, self.client_key):
            secret_file.chmod(0o600)
        return config

    def start(self, timeout: float = 10.0) -> MosquittoBroker:
        """Start (or restart, after ``stop``) on the same port(s) and wait until it accepts TCP."""
        if self._process is not None and self._process.alive():
            return self
        argv = [_require_tool("mosquitto"), "-c", str(self.config_file)]
        self._process = ManagedProcess(argv, self.workdir / "mosquitto.log").start()
        try:
            for port in (self.port, self.cert_port):
                if port:
                    wait_for_tcp(HOST, port, timeout)
        except TimeoutError as exc:
            tail = self._process.log_tail()
            self._process.stop()
            raise BrokerError(f"mosquitto did not start on {HOST}:{self.port}: {exc}\n{tail}") from exc
        return self

    def start_letting_in_first(self, user: str, ready: threading.Event,
                               timeout: float = 10.0) -> MosquittoBroker:
        """Restart with only ``user`` allowed until ``ready`` is set (its client has subscribed again),
        then let everyone back in. A test observer thus misses nothing the gateway re-sends on its
        reconnect: with persistence off a restarted broker has no session to queue messages in."""
        self.set_users({user: self.all_users()[user]})
        self.start(timeout)
        ready.wait(timeout)
        self.set_users(self.all_users())
        self.reload()
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()

    def kill(self) -> None:
        """SIGKILL: an abrupt broker death (no clean shutdown of its connections)."""
        if self._process is not None:
            self._process.kill()
            self._process.stop()

    def reload(self) -> None:
        """SIGHUP: mosquitto re-reads the password file and ACL without dropping connections."""
        if self._process is not None:
            self._process.kill(signal.SIGHUP)

    def alive(self) -> bool:
        return self._process is not None and self._process.alive()

    def log_tail(self, n: int = 40) -> str:
        return self._process.log_tail(n) if self._process else ""

    @property
    def url(self) -> str:
        """``mqtts://user:password@127.0.0.1:port`` for ``--mqtt`` style options."""
        return f"mqtts://{self.username}:{self.password}@{HOST}:{self.port}"

    def __enter__(self) -> MosquittoBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class TopicWatcher:
    """A subscriber with its own broker user (``user``: name, password) that records every message on
    ``topic_filter`` (one filter or several; JSON bodies parsed, others kept as ``{"raw": text}``) and
    reconnects fast after a broker restart (``subscribed`` is set while its subscription stands). Tests
    publish through its ``client`` too."""

    def __init__(self, broker: MosquittoBroker, user: tuple[str, str],
                 topic_filter: str | Sequence[str]) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        c.username_pw_set(*user)
        c.tls_set(ca_certs=str(broker.ca_file))
        c.reconnect_delay_set(1, 1)
        filters = [topic_filter] if isinstance(topic_filter, str) else list(topic_filter)
        c.on_connect = lambda client, *a: client.subscribe([(f, 1) for f in filters])
        c.on_subscribe = lambda *a: self.subscribed.set()
        c.on_disconnect = lambda *a: self.subscribed.clear()
        c.on_message = self._on_message
        c.connect(broker.host, broker.port)
        c.loop_start()
        self.client = c

    def _on_message(self, client: Any, userdata: object, msg: Any) -> None:
        try:
            body = json.loads(msg.payload)
        except ValueError:
            body = {"raw": bytes(msg.payload).decode(errors="replace")}
        with self.lock:
            self.messages.append((msg.topic, body))

    def on(self, topic: str) -> list[dict[str, Any]]:
        with self.lock:
            return [b for t, b in self.messages if t == topic]

    def latest(self) -> dict[str, dict[str, Any]]:
        """The last body received on each topic (what a fresh subscriber holds of retained topics)."""
        with self.lock:
            return dict(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
