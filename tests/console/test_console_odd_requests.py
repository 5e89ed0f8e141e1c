"""`parkgate console serve` (a real uvicorn subprocess) over a real store, no daemon, answering odd
requests: a list time out of range is refused naming the field, and one stored anyway (the CLI takes any
time) is shown as its unix ms instead of breaking the page; a pass number larger than SQLite holds is not
found; live streams opened at the same moment stay within MAX_STREAMS, and their slots come back however
the clients leave."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from console_http import FORM, abandoned, console_config, csrf_of, log_in, send, sent_together
from markupsafe import escape

from edge.config import load_config
from edge.console.app import MAX_STREAMS, MAX_USER_STREAMS
from edge.store import ListEntry, Store
from edge.tools.console import ConsoleProcess, add_user
from edge.tools.net import free_tcp_port

OPERATOR = ("olga", "operator-pass-1")
VIEWER = ("victor", "viewer-pass-12")
OTHER = ("vera", "viewer-pass-13")
FAR = "9999-12-31T23:59:59-14:00"  # year 10000 in UTC, beyond what datetime can show
FAR_MS = 253402351199000


@dataclass(frozen=True)
class Site:
    port: int
    config: Path
    store: Path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A console with an operator and a viewer beside the daemon's store (made as `parkgate run` makes it)."""
    tmp = tmp_path_factory.mktemp("console")
    port = free_tcp_port()
    config = console_config(tmp, port, "gw-odd", "LOT-O")
    for (name, password), role in ((OPERATOR, "operator"), (VIEWER, "viewer"), (OTHER, "viewer")):
        assert add_user(config, name, role, password).returncode == 0
    store = load_config(config).store_path
    Store(store).close()
    with ConsoleProcess(config, port, tmp / "console.log"):
        yield Site(port, config, store)


def parkgate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True,
                          timeout=60, check=False)


def stored_entries(store: Path) -> list[tuple[str, int | None]]:
    with Store(store) as opened:
        return [(e.entry, e.valid_until_ms) for e in opened.list_entries()]


def test_a_list_time_out_of_range_is_refused_and_one_stored_anyway_is_shown_raw(site: Site) -> None:
    auth = log_in(site.port, *OPERATOR)
    csrf = csrf_of(send(site.port, "GET", "/lists", headers=auth))
    form = f"csrf={csrf}&list=deny&entry=FF-100-FF&until={FAR}".encode().replace(b"+", b"%2B")
    refused = send(site.port, "POST", "/lists/add", form, {**auth, **FORM})
    stored_by_console = stored_entries(site.store)
    added = parkgate("list", "deny", "add", "ZZ-999-ZZ", "--until", FAR, "--config", str(site.config))
    with Store(site.store) as opened:  # such an entry stored anyway (by an earlier version)
        opened.put_list_entry(ListEntry("deny", "ZZ999ZZ", None, FAR_MS, "", "cli"))
    shown = parkgate("list", "deny", "show", "--config", str(site.config))
    page = send(site.port, "GET", "/lists", headers=auth)
    viewer_page = send(site.port, "GET", "/lists", headers=log_in(site.port, *VIEWER))
    removed = send(site.port, "POST", "/lists/remove", f"csrf={csrf}&list=deny&entry=ZZ999ZZ".encode(),
                   {**auth, **FORM})
    assert refused.status == 400, refused.body
    assert escape(f"valid until '{FAR}' is out of range; allowed: a time from 2000-01-01 up to 2100-01-01 "
                  "(UTC), or empty") in refused.body
    assert "FF100FF" not in [entry for entry, _ in stored_by_console]
    assert added.returncode == 1 and f"--until '{FAR}' is out of range" in added.stderr, added.stdout
    assert shown.returncode == 0 and f"{FAR_MS} (unix ms)" in shown.stdout, shown.stderr
    assert page.status == 200 and f"{FAR_MS} (unix ms)" in page.body
    assert 'name="entry" value="ZZ999ZZ"><button type="submit">Remove' in page.body
    assert viewer_page.status == 200 and f"{FAR_MS} (unix ms)" in viewer_page.body
    assert removed.status == 200 and "ZZ999ZZ removed" in removed.body
    assert "ZZ999ZZ" not in [entry for entry, _ in stored_entries(site.store)]


def test_a_pass_number_beyond_sqlite_is_not_found(site: Site) -> None:
    auth = log_in(site.port, *OPERATOR)
    huge = send(site.port, "GET", "/evidence/99999999999999999999", headers=auth)
    largest = send(site.port, "GET", f"/evidence/{2**63 - 1}", headers=auth)
    assert huge.status == 404 and "no evidence image for pass #99999999999999999999" in huge.body
    assert largest.status == 404


def open_streams(site: Site, auth: dict[str, str], count: int) -> Counter[int]:
    """The statuses of ``count`` live streams asked for at the same moment (closed again at once)."""
    with sent_together(site.port, count, "GET", "/live/entry-1.mjpg", headers=auth) as replies:
        return Counter(r.status for r in replies)


def slots_all_free(site: Site, users: list[dict[str, str]], timeout_s: float = 60.0) -> bool:
    """Whether, within ``timeout_s``, exactly MAX_STREAMS streams open at once again, MAX_USER_STREAMS for
    each of ``users`` (MAX_STREAMS in all): no slot leaked, none given back twice."""
    assert len(users) * MAX_USER_STREAMS == MAX_STREAMS
    other = log_in(site.port, *OTHER)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with ExitStack() as stack:
            statuses = Counter(r.status for auth in users for r in stack.enter_context(
                sent_together(site.port, MAX_USER_STREAMS + 1, "GET", "/live/entry-1.mjpg", headers=auth)))
            if statuses == {200: MAX_STREAMS, 429: len(users)}:  # else a 200 stream would never end
                with sent_together(site.port, 1, "GET", "/live/entry-1.mjpg", headers=other) as left:
                    if left[0].status == 503:
                        return True
        time.sleep(0.5)  # a closed stream is noticed at its next frame tick
    return False


def test_live_streams_opened_together_stay_within_the_limit_and_never_leak(site: Site) -> None:
    auth = log_in(site.port, *OPERATOR)
    users = [auth, log_in(site.port, *VIEWER)]
    together = open_streams(site, auth, 3 * MAX_STREAMS)
    freed_after_close = slots_all_free(site, users)
    abandoned(site.port, 3 * MAX_STREAMS, "GET", "/live/entry-1.mjpg", auth)  # gone before any answer
    freed_after_leaving = slots_all_free(site, users)
    assert together == {200: MAX_USER_STREAMS, 429: 3 * MAX_STREAMS - MAX_USER_STREAMS}
    assert freed_after_close and freed_after_leaving


def test_one_user_cannot_take_every_live_view(site: Site) -> None:
    viewer, operator = log_in(site.port, *VIEWER), log_in(site.port, *OPERATOR)
    with sent_together(site.port, MAX_STREAMS, "GET", "/live/entry-1.mjpg", headers=viewer) as taken:
        statuses = Counter(r.status for r in taken)
        refused = [r.read().decode() for r in taken if r.status == 429]
        with sent_together(site.port, 1, "GET", "/live/entry-1.mjpg", headers=operator) as mine:
            theirs = mine[0].status
    assert statuses == {200: MAX_USER_STREAMS, 429: MAX_STREAMS - MAX_USER_STREAMS}
    assert all("you have 2 live views open already" in body for body in refused)
    assert theirs == 200  # the operator still sees the lane
