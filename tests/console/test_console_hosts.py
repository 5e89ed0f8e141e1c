"""The console answers only requests whose Host names it (DNS rebinding): a page elsewhere that rebinds its
own name to 127.0.0.1 reaches a tunnelled console from the installer's browser with ``Host: evil.example``
(all traffic here goes to 127.0.0.1; only the header differs). Such requests get 400 and no login form,
cannot count failed logins, and are logged; the loopback names on any port (tunnels change it), the
configured host and ``[console] allowed_hosts`` are served. ``config check`` refuses "*" and "" there, and
a console on every interface without ``allowed_hosts`` says at start which names it answers."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from console_http import FORM, Reply, console_config, send
from starlette.responses import PlainTextResponse
from starlette.types import Message, Receive, Scope, Send

from edge.cli import main
from edge.config import load_config, parse_config
from edge.console.hosts import LOG_BURST, LOG_EVERY_S, HostCheck, accepted_hosts, host_warning
from edge.tools.console import ConsoleProcess, add_user
from edge.tools.net import free_tcp_port

OPERATOR = ("olga", "operator-pass-1")
ALLOWED = "gate.example.lan"
LOGIN_FORM = 'name="password"'


def login_page(port: int, host: str) -> Reply:
    return send(port, "GET", "/login", headers={"Host": host})


def test_requests_naming_another_host_are_refused_and_logged(tmp_path: Path) -> None:
    port = free_tcp_port()
    config = console_config(tmp_path, port, "gw-hosts", "LOT-H", allowed_hosts=[ALLOWED], login_attempts=2)
    assert add_user(config, OPERATOR[0], "operator", OPERATOR[1]).returncode == 0
    log = tmp_path / "console.log"
    with ConsoleProcess(config, port, log):
        refused = {host: login_page(port, host) for host in (
            "evil.example", f"evil.example:{port}", "localhost.evil.example", "127.0.0.1.evil.example",
            f"{ALLOWED}.evil.example", "[::2]:9000")}
        no_host = send(port, "GET", "/login", headers={"Host": ""})
        forged = [send(port, "POST", "/login", f"csrf=x&user={OPERATOR[0]}&password=wrong-{i}".encode(),
                       {**FORM, "Host": "evil.example"}) for i in range(3)]
        served = {host: login_page(port, host) for host in (
            "localhost:9000", "LOCALHOST", f"127.0.0.1:{port}", "127.0.0.1:9000", "[::1]:9000", "[::1]",
            ALLOWED, f"{ALLOWED.upper()}:443")}
        token = served[f"127.0.0.1:{port}"]
        after = send(port, "POST", "/login", _login_body(token), _login_headers(token))
    for host, reply in refused.items():
        assert reply.status == 400, (host, reply)
        assert LOGIN_FORM not in reply.body and "set-cookie" not in reply.headers, host
    assert no_host.status == 400
    assert [reply.status for reply in forged] == [400, 400, 400]
    for host, reply in served.items():
        assert reply.status == 200 and LOGIN_FORM in reply.body, (host, reply.status)
    assert after.status == 303, after  # the refused logins counted no failure: the user is not locked out
    text = log.read_text()
    assert "console: refused a request for Host 'evil.example' (400)" in text, text
    assert ("it answers localhost, 127.0.0.1, [::1], gate.example.lan: if it is served under that name, "
            "add it to [console] allowed_hosts") in text


def _login_headers(page: Reply) -> dict[str, str]:
    cookie = next(c for c in page.headers["set-cookie"] if c.startswith("pg_login=")).split(";")[0]
    return {**FORM, "Cookie": cookie}


def _login_body(page: Reply) -> bytes:
    token = page.body.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    return f"csrf={token}&user={OPERATOR[0]}&password={OPERATOR[1]}".encode()


def test_the_accepted_names() -> None:
    def names(text: str) -> tuple[str, ...]:
        return accepted_hosts(parse_config(f"[console]\n{text}\n").console)

    loopback = ("localhost", "127.0.0.1", "[::1]")
    assert names("") == loopback
    assert names('host = "0.0.0.0"') == names('host = "::"') == loopback
    assert names('host = "192.168.1.20"') == (*loopback, "192.168.1.20")
    assert names('host = "fd00::0005"\nallowed_hosts = ["Gate.Example.LAN", "fd00::6"]') == (
        *loopback, "[fd00::5]", "gate.example.lan", "[fd00::6]")
    assert host_warning(parse_config('[console]\nhost = "192.168.1.20"\n').console) is None
    assert host_warning(parse_config('[console]\nhost = "0.0.0.0"\nallowed_hosts = ["gate.lan"]\n').console) \
        is None


@pytest.mark.parametrize("value", ["*", ""])
def test_config_check_refuses_a_wildcard_or_empty_allowed_host(tmp_path: Path, value: str) -> None:
    config = tmp_path / "parkgate.toml"
    config.write_text(f'[console]\nallowed_hosts = ["gate.example.lan", "{value}"]\n')
    checked = subprocess.run([sys.executable, "-m", "edge.cli", "config", "check", str(config)],
                             capture_output=True, text=True, timeout=60, check=False)
    assert checked.returncode == 1, checked.stdout
    assert f"console.allowed_hosts[1]: '{value}' is not allowed; allowed: a host name or IP address" \
        in checked.stdout
    assert "not '*' nor a wildcard (that would switch the Host check off) and not empty" in checked.stdout


def test_a_console_on_every_interface_says_which_names_it_answers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The server itself is not started (it would listen on every interface): only what serve prints."""
    import uvicorn

    config = console_config(tmp_path, free_tcp_port(), "gw-any", "LOT-A", host="0.0.0.0")
    assert load_config(config).console.host == "0.0.0.0"
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: None)
    main(["console", "serve", "--config", str(config)])
    err = capsys.readouterr().err
    assert "WARNING: the console listens on 0.0.0.0 (every interface) but answers only requests for " \
           "localhost, 127.0.0.1, [::1] (any port)" in err, err
    assert "Add each name it is served under to [console] allowed_hosts, e.g. allowed_hosts = " in err


def test_refusals_are_counted_and_their_log_lines_limited(caplog: pytest.LogCaptureFixture) -> None:
    """A rebinding page may knock again and again: every refusal is counted, LOG_BURST lines are logged at
    once, then one per LOG_EVERY_S saying how many it stands for."""
    now = [0.0]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("served")(scope, receive, send)

    check = HostCheck(app, ("localhost",), clock=lambda: now[0])

    def status(host: str) -> int:
        sent: list[Message] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": "/", "query_string": b"",
                 "headers": [(b"host", host.encode())]}
        asyncio.run(check(scope, receive, send))
        return int(sent[0]["status"])

    with caplog.at_level(logging.WARNING, logger="edge.console.hosts"):
        statuses = [status("evil.example") for _ in range(LOG_BURST + 10)]
        now[0] = LOG_EVERY_S
        statuses.append(status("evil.example:80"))
        served = status("localhost:9000")
    lines = [r.getMessage() for r in caplog.records]
    assert statuses == [400] * (LOG_BURST + 11) and served == 200
    assert check.refused == LOG_BURST + 11
    assert len(lines) == LOG_BURST + 1, lines
    assert "for Host 'evil.example:80' (400) and 10 more since the last such line" in lines[-1]
