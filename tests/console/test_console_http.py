"""`parkgate console serve` as its own process, over HTTPS with a certificate from a throw-away CA (real
openssl, real uvicorn; no daemon running): the cookies are Secure, HttpOnly and SameSite=Strict, pages say
clearly that no daemon answers, and bad requests get a clear 4xx naming what is allowed."""

from __future__ import annotations

import re
import ssl
import subprocess
import sys
from pathlib import Path

from console_http import send

from edge.tools.console import ConsoleProcess, add_user, console_section
from edge.tools.demo import harness as h
from edge.tools.mosquitto import issue_cert, make_ca
from edge.tools.net import free_tcp_port

USER, PASSWORD = "olga", "operator-pass-1"


def parkgate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True,
                          timeout=60, check=False)


class Client:
    def __init__(self, port: int, ca: Path) -> None:
        self.port, self.context = port, ssl.create_default_context(cafile=str(ca))

    def send(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
             ) -> tuple[int, dict[str, list[str]], str]:
        reply = send(self.port, method, path, body, headers, tls=self.context)
        return reply.status, reply.headers, reply.body


def cookie(headers: dict[str, list[str]], name: str) -> str:
    return next(c for c in headers["set-cookie"] if c.startswith(name + "="))


def test_console_over_tls_with_secure_cookies_and_clear_refusals(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    ca = make_ca(tmp_path)
    crt, key = issue_cert(tmp_path, ca, "console", "127.0.0.1", server=True)
    port = free_tcp_port()
    config = tmp_path / "parkgate.toml"
    config.write_text(h.toml_text(
        {"gateway": {"id": "gw-tls", "lot_id": "LOT-T", "state_dir": str(state)},
         "console": console_section(port, cert_file=str(crt), key_file=str(key))},
        [{"name": "entry-1", "gate": {"port": "/dev/null"}}]))
    off = tmp_path / "off.toml"
    off.write_text(config.read_text().replace("enabled = true", "enabled = false"))
    refused_off = parkgate("console", "serve", "--config", str(off))
    assert add_user(config, USER, "operator", PASSWORD).returncode == 0
    console = ConsoleProcess(config, port, tmp_path / "console.log").start()
    try:
        client = Client(port, ca[0])
        status, headers, body = client.send("GET", "/login")
        login_cookie = cookie(headers, "pg_login")
        token = re.search(r'name="csrf" value="([^"]+)"', body).group(1)  # type: ignore[union-attr]
        form = f"csrf={token}&user={USER}&password={PASSWORD}".encode()
        form_type = {"Content-Type": "application/x-www-form-urlencoded"}
        no_token = client.send("POST", "/login", f"user={USER}&password={PASSWORD}".encode(),
                               {**form_type, "Cookie": login_cookie.split(";")[0]})
        logged_in = client.send("POST", "/login", form, {**form_type, "Cookie": login_cookie.split(";")[0]})
        session = cookie(logged_in[1], "pg_session")
        auth = {"Cookie": session.split(";")[0]}
        health = client.send("GET", "/", headers=auth)
        csrf = re.search(r'name="csrf" value="([^"]+)"', health[2]).group(1)  # type: ignore[union-attr]
        plain_text = client.send("POST", "/actions", b"x", {**auth, "Content-Type": "text/plain"})
        huge = client.send("POST", "/actions", b"csrf=" + b"a" * 20_000, {**auth, **form_type})
        bad_lane = client.send("POST", "/actions", f"csrf={csrf}&action=open&lane=x&reason=r".encode(),
                               {**auth, **form_type})
        no_daemon = client.send("POST", "/actions", f"csrf={csrf}&action=open&lane=entry-1&reason=r".encode(),
                                {**auth, **form_type})
        no_evidence = client.send("GET", "/evidence/99999", headers=auth)
        no_store = client.send("GET", "/passes", headers=auth)
        unknown = client.send("GET", "/nowhere/<script>", headers=auth)
        removed = parkgate("console", "user", "remove", USER, "--config", str(config))
        after_removal = client.send("GET", "/", headers=auth)
    finally:
        console.stop()
    assert refused_off.returncode == 1
    assert "the console is off: set [console] enabled = true" in refused_off.stderr
    assert status == 200 and "; secure" in login_cookie.lower() and "samesite=strict" in login_cookie.lower()
    assert "default-src 'none'" in headers["content-security-policy"][0]
    assert no_token[0] == 403 and "CSRF" in no_token[2]
    assert logged_in[0] == 303 and logged_in[1]["location"] == ["/"]
    lowered = session.lower()
    assert "; secure" in lowered and "; httponly" in lowered and "samesite=strict" in lowered
    assert health[0] == 200 and "no daemon status at" in health[2]
    assert "is `parkgate run` running" in health[2]
    assert plain_text[0] == 400 and "application/x-www-form-urlencoded" in plain_text[2]
    assert huge[0] == 400 and "larger than 16384 bytes" in huge[2]
    assert bad_lane[0] == 400 and "lane &#39;x&#39; unknown; lanes: entry-1" in bad_lane[2]
    assert no_daemon[0] == 503 and "no daemon answers at" in no_daemon[2]
    assert no_evidence[0] == 503 and "no store at" in no_evidence[2]
    assert "has parkgate run yet?" in no_evidence[2]
    assert no_store[0] == 503 and "no store at" in no_store[2]
    assert not (state / "parkgate.sqlite").exists()  # the console never makes the daemon's store
    assert unknown[0] == 404 and "<script>" not in unknown[2]
    assert removed.returncode == 0 and after_removal[0] == 303 and after_removal[1]["location"] == ["/login"]
