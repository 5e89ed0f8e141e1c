"""Logins to `parkgate console serve` (a real uvicorn subprocess, the users file written by `parkgate console
user add`) sent at the same moment, as a script guessing passwords would: no more passwords are checked
than the login limit allows, at most a few at once (the rest refused with 429 and Retry-After); and a new
password ends the user's sessions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from console_http import console_config, log_in, login_form, send, sent_together

from edge.console.app import MAX_LOGINS
from edge.console.auth import MAX_USER_SESSIONS
from edge.tools.console import ConsoleProcess, add_user
from edge.tools.net import free_tcp_port

USER, PASSWORD = "olga", "operator-pass-1"


@contextmanager
def running_console(tmp_path: Path, **console: object) -> Iterator[int]:
    """A console with one operator (USER) and no daemon; its port."""
    port = free_tcp_port()
    config = console_config(tmp_path, port, "gw-logins", "LOT-L", **console)
    assert add_user(config, USER, "operator", PASSWORD).returncode == 0
    with ConsoleProcess(config, port, tmp_path / "console.log"):
        yield port


def login_request(port: int, password: str, extra: dict[str, str] | None = None
                  ) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a login of USER from a fresh login form (``extra`` headers added; its
    Cookie beside the form's)."""
    headers, token = login_form(port)
    extra = dict(extra or {})
    if "Cookie" in extra:
        headers["Cookie"] += "; " + extra.pop("Cookie")
    return f"csrf={token}&user={USER}&password={password}".encode(), {**headers, **extra}


def wrong_logins_together(port: int, count: int) -> tuple[Counter[int], list[str], list[str]]:
    """``count`` wrong passwords for USER sent together: the statuses, the 429s' Retry-After and bodies."""
    form, headers = login_request(port, "wrong-guess-0000")
    with sent_together(port, count, "POST", "/login", form, headers) as replies:
        bodies = [(r.status, r.getheader("Retry-After") or "", r.read().decode()) for r in replies]
    refused = [(after, body) for status, after, body in bodies if status == 429]
    return (Counter(status for status, _, _ in bodies), [after for after, _ in refused],
            [body for _, body in refused])


def test_wrong_logins_sent_together_get_no_more_checks_than_the_limit(tmp_path: Path) -> None:
    with running_console(tmp_path, login_attempts=5) as port:
        bursts = [wrong_logins_together(port, 30) for _ in range(2)]
        later = send(port, "POST", "/login", *login_request(port, PASSWORD))
    statuses = sum((statuses for statuses, _, _ in bursts), Counter())
    assert statuses == {401: 5, 429: 55}, statuses  # 5 passwords checked in all, as many as allowed
    assert all(after.isdigit() and int(after) >= 1 for _, retry_after, _ in bursts for after in retry_after)
    assert later.status == 429 and "too many failed logins" in later.body  # even the right password


def test_password_checks_beyond_the_few_at_once_are_refused_with_retry_after(tmp_path: Path) -> None:
    with running_console(tmp_path, login_attempts=100) as port:  # the limit itself is never reached here
        statuses, retry_after, bodies = wrong_logins_together(port, 24)
        auth = log_in(port, USER, PASSWORD)  # a login after the burst is checked again
        health = send(port, "GET", "/", headers=auth)
    assert statuses[429] >= 1 and statuses[401] + statuses[429] == 24, statuses
    assert statuses[401] >= MAX_LOGINS
    assert set(retry_after) == {"1"}
    assert all(f"{MAX_LOGINS} logins are being checked already" in body for body in bodies)
    assert health.status == 200


def test_a_new_password_ends_the_users_sessions(tmp_path: Path) -> None:
    with running_console(tmp_path) as port:
        auth = log_in(port, USER, PASSWORD)
        before = send(port, "GET", "/", headers=auth)
        config = tmp_path / "parkgate.toml"
        changed = add_user(config, USER, "operator", "brand-new-pass-2")  # same role, new password
        after = send(port, "GET", "/", headers=auth)
        old_password = send(port, "POST", "/login", *login_request(port, PASSWORD))
        new_auth = log_in(port, USER, "brand-new-pass-2")
        again = send(port, "GET", "/", headers=new_auth)
    assert before.status == 200 and changed.returncode == 0
    assert after.status == 303 and after.headers["location"] == ["/login"]
    assert old_password.status == 401
    assert again.status == 200


def wrong_login(port: int, user: str, forwarded_for: str) -> int:
    """The status of a wrong password for ``user`` sent with ``X-Forwarded-For: forwarded_for``."""
    headers, token = login_form(port)
    body = f"csrf={token}&user={user}&password=wrong-guess-0000".encode()
    return send(port, "POST", "/login", body, {**headers, "X-Forwarded-For": forwarded_for}).status


def test_a_local_client_cannot_pick_its_address_with_x_forwarded_for(tmp_path: Path) -> None:
    with running_console(tmp_path, login_attempts=5) as port:
        first = [wrong_login(port, "guess", "10.0.0.1") for _ in range(5)]
        other = wrong_login(port, "guess", "10.0.0.2")  # another "address": still this one client
    assert first == [401] * 5
    assert other == 429
    assert "10.0.0." not in (tmp_path / "console.log").read_text()


def test_a_trusted_proxy_names_the_client_address(tmp_path: Path) -> None:
    with running_console(tmp_path, login_attempts=5, trusted_proxies=["127.0.0.1"]) as port:
        first = [wrong_login(port, "guess", "10.0.0.1") for _ in range(5)]
        same = wrong_login(port, "guess", "10.0.0.1")
        other = wrong_login(port, "guess", "10.0.0.2")
    assert first == [401] * 5 and same == 429 and other == 401
    assert "from 10.0.0.1" in (tmp_path / "console.log").read_text()


def test_failures_for_a_user_from_elsewhere_do_not_keep_her_out(tmp_path: Path) -> None:
    with running_console(tmp_path, login_attempts=2, trusted_proxies=["127.0.0.1"]) as port:
        olga = {"X-Forwarded-For": "10.0.0.5"}
        first = send(port, "POST", "/login", *login_request(port, PASSWORD, olga))  # her browser
        others = [wrong_login(port, USER, f"10.0.1.{i}") for i in range(5)]  # 5 > login_attempts
        fresh = send(port, "POST", "/login", *login_request(port, PASSWORD, {"X-Forwarded-For": "10.0.0.6"}))
        spent = [wrong_login(port, USER, f"10.0.2.{i}") for i in range(20)]  # the per-user budget: 2 × 10
        elsewhere = {"X-Forwarded-For": "10.0.0.7"}
        stranger = send(port, "POST", "/login", *login_request(port, PASSWORD, elsewhere))
        kept = [c.split(";")[0] for c in first.headers["set-cookie"] if c.startswith("pg_device=")]
        device = {**olga, "Cookie": "; ".join(kept)}
        hers = send(port, "POST", "/login", *login_request(port, PASSWORD, device))
    assert first.status == 303 and others == [401] * 5
    assert fresh.status == 303  # from another address: not locked by failures elsewhere
    assert 429 in spent and stranger.status == 429  # a large budget per user ...
    assert hers.status == 303  # ... that never locks the browser she logged in with


def test_logging_in_again_and_again_ends_only_ones_own_oldest_sessions(tmp_path: Path) -> None:
    with running_console(tmp_path) as port:
        assert add_user(tmp_path / "parkgate.toml", "victor", "viewer", "viewer-pass-1").returncode == 0
        operator = log_in(port, USER, PASSWORD)
        viewer = [log_in(port, "victor", "viewer-pass-1") for _ in range(MAX_USER_SESSIONS + 2)]
        olga = send(port, "GET", "/", headers=operator)
        oldest = send(port, "GET", "/", headers=viewer[1])
        newest = send(port, "GET", "/", headers=viewer[2])
    assert olga.status == 200
    assert oldest.status == 303 and oldest.headers["location"] == ["/login"]  # his own oldest two ended
    assert newest.status == 200


def test_cookies_are_secure_behind_a_tls_proxy(tmp_path: Path) -> None:
    https = {"X-Forwarded-Proto": "https"}
    with running_console(tmp_path, trusted_proxies=["127.0.0.1"]) as port:
        form = send(port, "GET", "/login", headers=https)
        login = send(port, "POST", "/login", *login_request(port, PASSWORD, https))
        plain = send(port, "POST", "/login", *login_request(port, PASSWORD))
    secure = [c for c in form.headers["set-cookie"] + login.headers["set-cookie"] if "Max-Age=0" not in c]
    assert login.status == 303
    assert {c.split("=")[0] for c in secure} == {"pg_login", "pg_session", "pg_device"}
    assert all("; secure" in c.lower() for c in secure), secure
    assert plain.status == 303 and not any("secure" in c.lower() for c in plain.headers["set-cookie"])


def test_an_untrusted_client_cannot_claim_https(tmp_path: Path) -> None:
    with running_console(tmp_path) as port:  # no trusted proxy: X-Forwarded-Proto is not believed
        form = send(port, "GET", "/login", headers={"X-Forwarded-Proto": "https"})
    assert not any("secure" in c.lower() for c in form.headers["set-cookie"])
