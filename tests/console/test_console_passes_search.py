"""The passes search keeps a typed plate out of every URL (browser history, proxy logs, the Referer): the
search form and the page buttons POST it with the session's CSRF token. In a real browser (Debian's
chromium through Playwright, a profile of its own so that its history is written to disk) a plate search
shows the matching passes and pages through them with the filter kept, while the page's URL, every
request the page makes and every entry of the browser's history carry no plate text, and no request
carries a Referer. A plate in a URL
is refused, and pages say ``Referrer-Policy: no-referrer``. A real console (uvicorn) over a real store."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus, urlsplit

import pytest
from console_browsing import CHROMIUM, chromium_args, log_in
from console_http import FORM, console_config, csrf_of, send
from console_http import log_in as http_log_in

from edge.config import load_config
from edge.store import GateEventRow, Store, new_event_id
from edge.tools.console import ConsoleProcess, add_user
from edge.tools.net import free_tcp_port

OPERATOR = ("olga", "operator-pass-1")
PLATE = "KX 904-LM"  # stored masked as KX***M
T0_MS = 1_796_000_000_000
PAGE = 3  # passes a page (the limit a link may carry)


@dataclass(frozen=True)
class Site:
    port: int
    searched: list[int]  # the searched plate's pass numbers, newest first


def seed(store: Path) -> list[int]:
    """Seven passes of the searched plate between three of another; the searched plate's pass numbers."""
    seqs = []
    with Store(store) as db:
        for i in range(10):
            mine = i % 3 != 1
            db.record_gate_event(GateEventRow(
                event_id=new_event_id(T0_MS + i * 60_000), lane="entry-1", direction="entry",
                kind="denied" if mine else "check_in", reason="seed", occurred_at_ms=T0_MS + i * 60_000,
                plate_masked="KX***M" if mine else "AB***D", confidence=0.9))
            if mine:
                seqs.append(db.conn.execute("SELECT max(seq) FROM gate_events").fetchone()[0])
    return seqs[::-1]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("passes")
    port = free_tcp_port()
    config = console_config(tmp, port, "gw-passes", "LOT-P")
    assert add_user(config, OPERATOR[0], "operator", OPERATOR[1]).returncode == 0
    searched = seed(load_config(config).store_path)
    with ConsoleProcess(config, port, tmp / "console.log"):
        yield Site(port, searched)


def plate_in(url: str) -> bool:
    """Whether a URL (its path, query and fragment, decoded) carries any form of the plate: as typed,
    normalised (KX904LM) or masked (KX***M)."""
    parts = urlsplit(url)
    text = unquote_plus(f"{parts.path}?{parts.query}#{parts.fragment}").upper()
    return "KX" in text or "904" in text


def history_urls(profile: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{profile / 'Default' / 'History'}?mode=ro", uri=True, timeout=5)
    try:
        return [row[0] for row in conn.execute("SELECT url FROM urls")]
    finally:
        conn.close()


def shown(page: Any) -> list[tuple[int, str]]:
    rows = page.locator("table#passes tr[data-seq]")
    return [(int(rows.nth(i).get_attribute("data-seq")), rows.nth(i).locator("td.plate").inner_text())
            for i in range(rows.count())]


def test_a_plate_search_pages_through_passes_with_no_plate_in_any_url(site: Site, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    base, profile = f"http://127.0.0.1:{site.port}", tmp_path / "profile"
    requested: list[str] = []
    referers: list[str] = []
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True,
                                                        args=chromium_args())
        try:
            context.set_default_timeout(15_000)
            context.on("request", lambda request: requested.append(request.url))
            context.on("request", lambda request: referers.extend(
                value for key, value in request.headers.items() if key.lower() == "referer" and value))
            page = log_in(context, base, *OPERATOR)
            page.wait_for_selector("#who")
            page.goto(f"{base}/passes?limit={PAGE}")
            page.fill("form.search input[name=plate]", PLATE)
            page.click("form.search button[type=submit]")
            page.wait_for_selector("table#passes")
            pages, urls = [shown(page)], [page.url]
            assert not plate_in(page.url), page.url  # the old GET form put ?plate=KX+904-LM here
            while page.locator("#older-form").count():
                page.click("#older-form button[type=submit]")
                page.wait_for_selector("table#passes")
                pages.append(shown(page))
                urls.append(page.url)
            typed = page.input_value("form.search input[name=plate]")
            page.click("#newest-form button[type=submit]")
            page.wait_for_selector("table#passes")
            newest = shown(page)
            urls.append(page.url)
        finally:
            context.close()  # writes the profile's history
    history = history_urls(profile)
    assert [len(rows) for rows in pages] == [PAGE, PAGE, 1], pages
    assert [seq for rows in pages for seq, _ in rows] == site.searched  # every match once, newest first
    assert {plate for rows in pages for _, plate in rows} == {"KX***M"}
    assert newest == pages[0] and typed == PLATE  # the filter is kept from page to page
    assert any("/passes" in url for url in history) and len(requested) > 5
    assert [url for url in [*urls, *requested, *history] if plate_in(url)] == []
    assert referers == []  # Referrer-Policy: no-referrer


def test_a_plate_in_a_url_is_refused_and_the_search_needs_the_csrf_token(site: Site) -> None:
    auth = http_log_in(site.port, *OPERATOR)
    in_url = send(site.port, "GET", "/passes?plate=KX***M&lane=entry-1", headers=auth)
    lane_only = send(site.port, "GET", "/passes?plate=&lane=entry-1&kind=check_in", headers=auth)
    no_token = send(site.port, "POST", "/passes", b"plate=KX***M", {**auth, **FORM})
    posted = send(site.port, "POST", "/passes", f"csrf={csrf_of(lane_only)}&plate=kx***m".encode(),
                  {**auth, **FORM})
    bad_page = send(site.port, "POST", "/passes", f"csrf={csrf_of(lane_only)}&before=x".encode(),
                    {**auth, **FORM})
    assert in_url.status == 400 and "a plate is never taken from the address" in in_url.body
    assert "data-seq" not in in_url.body and 'value="KX***M"' not in in_url.body
    assert lane_only.status == 200 and lane_only.body.count("data-seq") == 3  # other filters: links may
    assert "KX***M" not in lane_only.body  # carry them (no personal data)
    assert no_token.status == 403 and "CSRF" in no_token.body
    assert posted.status == 200 and posted.body.count("data-seq") == len(site.searched)
    assert bad_page.status == 400
    assert "before &#39;x&#39; not allowed; allowed: a pass number" in bad_page.body
    for reply in (in_url, lane_only, posted):
        assert reply.headers["referrer-policy"] == ["no-referrer"]
