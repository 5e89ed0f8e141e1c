"""Allow/deny list displays (`parkgate list ... show`, the console's /lists page) on a gateway whose wall
clock is 3 days behind (a Pi booted without NTP): an entry's state (active, future, expired) is judged with
the running daemon's best time, as the daemon decides with it, and the display says that the clock is
behind. A real store file, the CLI in this process, a real console (uvicorn) in its own; the daemon is its
status file, written as it writes it (this process stands in), with a best time 3 days ahead of the wall
clock here."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from console_http import console_config, log_in, send

from edge.cli import main
from edge.clock import wall_clock_ms
from edge.config import load_config
from edge.identity import list_entry_key
from edge.store import ListEntry, Store
from edge.tools.console import ConsoleProcess, add_user
from edge.tools.demo import harness as h
from edge.tools.net import free_tcp_port

OPERATOR = ("olga", "operator-pass-1")
GATEWAY = "gw-lists-clock"
DAY_MS = 86_400_000
AHEAD_MS = 3 * DAY_MS + 90_000  # the daemon's best time ahead of the wall clock here: 3 d 1 min (and some)
BEHIND = "clock behind by 3 d 1 min: judged with the newest time this gateway has seen"


def lot(tmp_path: Path) -> tuple[Path, Path, int]:
    """A config and its store with an allow entry that ended a day ago by the daemon's best time (still
    valid for two days by the wall clock here); the daemon's best time."""
    port = free_tcp_port()
    config = console_config(tmp_path, port, GATEWAY, "LOT-LC")
    cfg = load_config(config)
    best = wall_clock_ms() + AHEAD_MS
    with Store(cfg.store_path) as store:
        store.put_list_entry(ListEntry("allow", list_entry_key("AB 123 CD"), None, best - DAY_MS, "plumber",
                                       "cli"))
    h.daemon_status_behind(cfg.gateway.state_dir, GATEWAY, best, AHEAD_MS)
    return config, cfg.gateway.state_dir, port


def test_list_show_judges_entries_with_the_daemons_best_time(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    config, _, _ = lot(tmp_path)
    assert main(["list", "allow", "show", "--config", str(config)]) == 0
    text = capsys.readouterr().out
    assert main(["list", "allow", "show", "--json", "--config", str(config)]) == 0
    shown = capsys.readouterr()
    entry = text.splitlines()[0].split()
    assert entry[:2] == ["AB123CD", "expired"], text  # was: active (by the wall clock, 3 days behind)
    assert text.splitlines()[-1].startswith(BEHIND), text
    assert json.loads(shown.out)[0]["state"] == "expired"  # stdout stays JSON; the note goes to stderr
    assert shown.err.startswith(BEHIND), shown.err


def test_the_lists_page_judges_entries_with_the_daemons_best_time(tmp_path: Path) -> None:
    config, state, port = lot(tmp_path)
    assert add_user(config, OPERATOR[0], "operator", OPERATOR[1]).returncode == 0
    with ConsoleProcess(config, port, tmp_path / "console.log"):
        auth = log_in(port, *OPERATOR)
        h.daemon_status_behind(state, GATEWAY, wall_clock_ms() + AHEAD_MS, AHEAD_MS)  # still running
        page = send(port, "GET", "/lists", headers=auth)
    assert page.status == 200, page.body
    assert '<td class="entry">AB123CD</td><td>expired</td>' in page.body  # was: active
    assert BEHIND in page.body


def test_booking_show_leaves_out_a_booking_ended_by_the_daemons_best_time(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, _, _ = lot(tmp_path)
    best = wall_clock_ms() + AHEAD_MS
    iso = lambda ms: datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")  # noqa: E731
    for start, end in ((best - 2 * DAY_MS, best - DAY_MS), (best + DAY_MS, best + 2 * DAY_MS)):
        assert main(["booking", "add", "--plate", "AB 123 CD", "--from", iso(start), "--until", iso(end),
                     "--config", str(config)]) == 0
    capsys.readouterr()
    assert main(["booking", "show", "--config", str(config)]) == 0
    text = capsys.readouterr().out
    assert "1 bookings made here" in text, text  # was 2: the ended one was still to come by the wall clock
    assert text.splitlines()[-1].startswith(BEHIND), text


def test_a_viewer_sees_list_plates_masked(tmp_path: Path) -> None:
    """The passes page masks plates; the lists page showed a viewer every listed plate in full."""
    config, _, port = lot(tmp_path)
    assert add_user(config, OPERATOR[0], "operator", OPERATOR[1]).returncode == 0
    assert add_user(config, "vera", "viewer", "viewer-pass-1").returncode == 0
    with ConsoleProcess(config, port, tmp_path / "console.log"):
        seen = send(port, "GET", "/lists", headers=log_in(port, "vera", "viewer-pass-1")).body
        edited = send(port, "GET", "/lists", headers=log_in(port, *OPERATOR)).body
    assert '<td class="entry">AB***D</td>' in seen and "AB123CD" not in seen
    assert '<td class="entry">AB123CD</td>' in edited
