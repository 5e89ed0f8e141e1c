"""The console in a real browser (Playwright driving Debian's chromium) against a real daemon with the gate
emulator on a pty, a recorded camera and the bundled ONNX models, and `parkgate console serve` beside it.

One daemon and one console for the whole story (each takes seconds to start on a Pi-class runner): an
operator logs in, sees the lane's health, finds the refused visitor's pass with its evidence image, lets
the visitor in by hand with a reason (audited through the control socket like the CLI), puts the visitor
on the allow list and sees the next arrival open the gate without a restart. A viewer cannot act, a POST
without the CSRF token is refused, wrong passwords hit the rate limit, and evidence needs a session."""

from __future__ import annotations

import re
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from console_browsing import answer, log_in

from edge.tools.console import ConsoleProcess, add_user, console_section
from edge.tools.demo import harness as h
from edge.tools.emulator.launch import running_emulator
from edge.tools.net import free_tcp_port

LANE = "entry-1"
VISITOR = h.Vehicle("visitor", "KX 904-LM", seed=622)
MEMBER = h.Vehicle("member", "AB 123-CD", seed=721)  # booked on this offline lot
OPERATOR = ("olga", "operator-pass-1")
VIEWER = ("victor", "viewer-pass-12")
ATTEMPTS = 3
ROI = [[0.05, 0.2], [0.95, 0.2], [0.95, 1.0], [0.05, 1.0]]


def parkgate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True,
                          timeout=60, check=False)


def query(store: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_console_in_a_browser_against_the_running_daemon(tmp_path: Path, browser: Any) -> None:
    state = tmp_path / "state"
    store = state / "parkgate.sqlite"
    live_frame = state / "live" / f"{LANE}.jpg"
    camera = h.LaneCamera(tmp_path / "camera", LANE)
    port = free_tcp_port()
    base = f"http://127.0.0.1:{port}"
    with running_emulator(tmp_path, name=LANE) as emulator:
        config = tmp_path / "parkgate.toml"
        config.write_text(h.toml_text(
            {"gateway": {"id": "gw-console", "lot_id": "LOT-C", "state_dir": str(state)},
             "console": console_section(port, login_attempts=ATTEMPTS)},
            [{"name": LANE, "gate": {"port": str(emulator.link), "baudrate": 115200, "pulse_ms": 3000},
              "camera": {"source": str(camera.manifest), "burst_frames": 3, "roi": ROI}}]))
        daemon = h.start_daemon(config, tmp_path / "daemon.log")
        console = ConsoleProcess(config, port, tmp_path / "console.log").start()
        try:
            added = [add_user(config, name, role, password)
                     for (name, password), role in ((OPERATOR, "operator"), (VIEWER, "viewer"))]
            short = add_user(config, "eve", "operator", "short")
            users = parkgate("console", "user", "list", "--config", str(config))
            booked = parkgate("booking", "add", "--plate", MEMBER.plate, "--from", "2020-01-01", "--until",
                              "2099-01-01", "--config", str(config))
            refused = h.play_visit(h.Visit(VISITOR, LANE, False, "no_booking"), emulator, camera, store)

            # unauthenticated: every page and the evidence lead to the login page, never the image
            anonymous = browser.new_context()
            evidence_anon = anonymous.request.get(base + "/evidence/1", max_redirects=0)
            health_anon = anonymous.request.get(base + "/", max_redirects=0)
            anonymous.close()

            operator = browser.new_context()
            page = log_in(operator, base, *OPERATOR)
            page.wait_for_selector("table#lanes")
            health_row = page.inner_text(f"tr[data-lane='{LANE}']")
            who = page.inner_text("#who")
            cookie = next(c for c in operator.cookies() if c["name"] == "pg_session")

            # the live view: the daemon encodes frames only while someone watches
            unwatched = live_frame.exists()
            page.goto(base + "/live", wait_until="domcontentloaded")
            live_width = page.wait_for_function(
                "() => { const i = document.querySelector('img.live-frame'); return i && i.naturalWidth; }",
                timeout=20_000).json_value()
            lane_state = page.inner_text(f"section[data-lane='{LANE}'] .lane-state")
            roi_drawn = page.get_attribute(f"section[data-lane='{LANE}'] svg.roi polygon.current", "points")
            live_mode = stat.S_IMODE(live_frame.stat().st_mode)
            # an installer tries a region of interest: refused with what is allowed, then a valid one
            page.fill("#roi-form input[name=roi]", "0.1,0.4;0.9,0.4")
            page.click("#roi-form button[type=submit]")
            page.wait_for_selector("#message")
            roi_refused = page.inner_text("#message")
            page.fill("#roi-form input[name=roi]", "0.1,0.4;0.9,0.4;0.9,1;0.1,1")
            page.click("#roi-form button[type=submit]")
            page.wait_for_selector("#roi-toml")
            roi_line = page.inner_text("#roi-toml")
            roi_proposed = page.get_attribute(f"section[data-lane='{LANE}'] polygon.proposed", "points")
            proposed_config = tmp_path / "proposed.toml"
            pasted = re.sub(r"^roi = .*$", roi_line, config.read_text(), flags=re.MULTILINE)
            proposed_config.write_text(pasted)
            roi_checked = parkgate("config", "check", str(proposed_config))
            page.goto(base + "/")  # leaves the live view

            page.goto(base + "/passes")
            page.fill("input[name=plate]", "KX 904-LM")  # searched by its mask, the only form stored
            page.click("form.search button[type=submit]")
            pass_rows = page.locator("table#passes tr[data-seq]")
            found = [pass_rows.nth(i).inner_text() for i in range(pass_rows.count())]
            image_width = page.eval_on_selector("img.evidence", "img => img.complete && img.naturalWidth")
            missing_image = answer(operator.request.get(base + "/evidence/99999"))
            page.fill("input[name=plate]", "ZZ***9")  # posted: a plate never goes in a URL
            page.click("form.search button[type=submit]")
            no_match = page.inner_text("table#passes")
            searched_url = page.url
            page.goto(base + "/passes?lane=nowhere")
            bad_lane = page.inner_text("#message")

            # the visitor phoned: let them in by hand, with a reason
            camera.show(VISITOR)
            time.sleep(0.3)
            opens_before = emulator.state()["open_commands"]
            page.goto(base + "/actions")
            page.select_option("select[name=lane]", LANE)
            page.select_option("select[name=action]", "open")
            page.fill("input[name=reason]", "visitor booked by phone")
            page.click("#gate-form button[type=submit]")
            opened_message = page.inner_text("#message")
            audit_shown = page.inner_text("table#audit")
            opens_after = emulator.state()["open_commands"]
            for command in ("safety 1", "safety 0"):
                emulator.command(command)
            camera.show(None)
            audit = query(store, "SELECT lane, action, source, operator, reason, result FROM manual_actions")

            # a POST without the CSRF token (the session cookie alone) is refused and does nothing
            no_csrf = answer(operator.request.post(base + "/actions", form={
                "lane": LANE, "action": "open", "reason": "forged"}))
            audit_after_forgery = query(store, "SELECT count(*) FROM manual_actions")[0][0]

            # the allow list, changed live: the visitor's next arrival opens the gate
            page.goto(base + "/lists")
            page.select_option("select[name=list]", "allow")
            page.fill("input[name=entry]", "KX 904-LM")
            page.fill("input[name=note]", "regular visitor")
            page.click("#list-form button[type=submit]")
            list_message = page.inner_text("#message")
            entries = page.inner_text("table#entries")
            time.sleep(3.5)  # the manual open's pulse is over
            admitted = h.play_visit(h.Visit(VISITOR, LANE, True, "allow"), emulator, camera, store)

            # a booked member put on the deny list is refused at once; removed, admitted again
            page.select_option("select[name=list]", "deny")
            page.fill("input[name=entry]", MEMBER.plate)
            page.click("#list-form button[type=submit]")
            banned = h.play_visit(h.Visit(MEMBER, LANE, False, "deny_listed"), emulator, camera, store)
            page.click("table#entries tr:has(td.entry:text-is('AB123CD')) button")
            removed_message = page.inner_text("#message")
            time.sleep(0.5)
            readmitted = h.play_visit(h.Visit(MEMBER, LANE, True, "booking_valid"), emulator, camera, store)

            # a viewer sees but cannot act, not even with a valid CSRF token
            viewer = browser.new_context()
            view_page = log_in(viewer, base, *VIEWER)
            view_page.wait_for_selector("table#lanes")
            view_page.goto(base + "/actions")
            viewer_forms = view_page.locator("#gate-form").count()
            csrf = view_page.get_attribute("form.logout input[name=csrf]", "value")
            viewer_post = answer(viewer.request.post(base + "/actions", form={
                "csrf": csrf or "", "lane": LANE, "action": "open", "reason": "viewer tries"}))
            viewer_list = answer(viewer.request.post(base + "/lists/add", form={
                "csrf": csrf or "", "list": "deny", "entry": "AB-123-CD"}))
            viewer.close()

            # wrong passwords: refused, then rate-limited (even the right password) for this user
            intruder = browser.new_context()
            wrong = []
            for _ in range(ATTEMPTS + 1):
                attempt = log_in(intruder, base, OPERATOR[0], "not-the-password")
                wrong.append(attempt.inner_text("#message"))
                attempt.close()
            right_but_limited = log_in(intruder, base, *OPERATOR)
            limited = right_but_limited.inner_text("#message")
            intruder.close()
            operator.close()
            final_audit = query(store, "SELECT count(*) FROM manual_actions")[0][0]
            stored_list = query(store, "SELECT list_name, entry, source FROM access_list_entries")
        finally:
            console_rc = console.stop()
            assert daemon.stop() == 0
    assert [a.returncode for a in added] == [0, 0], [a.stderr for a in added]
    assert short.returncode == 1 and "password has 5 characters; allowed: 10..256" in short.stderr
    assert "olga" in users.stdout and "viewer" in users.stdout and "2 console user(s)" in users.stdout
    users_file = state / "console_users.json"
    assert users_file.stat().st_mode & 0o777 == 0o600
    assert OPERATOR[1] not in users_file.read_text() and "$argon2id$" in users_file.read_text()
    assert console_rc is not None
    assert "no console users yet: every login is refused" in (tmp_path / "console.log").read_text()

    assert refused.opened is False and refused.rows and refused.rows[0]["kind"] == "denied"
    assert evidence_anon.status == 303 and evidence_anon.headers["location"] == "/login"
    assert health_anon.status == 303

    assert LANE in health_row and who == "olga (operator)"
    assert unwatched is False and live_width > 0 and live_mode == 0o600
    assert roi_drawn == "0.05,0.2 0.95,0.2 0.95,1 0.05,1"
    assert lane_state.startswith("phase ") and "link up" in lane_state and "camera ok" in lane_state
    assert "lanes[0].camera.roi" in roi_refused and "3 to" in roi_refused
    assert roi_line == "roi = [[0.1, 0.4], [0.9, 0.4], [0.9, 1], [0.1, 1]]"
    assert roi_proposed == "0.1,0.4 0.9,0.4 0.9,1 0.1,1"
    assert proposed_config.read_text() != config.read_text()
    assert roi_checked.returncode == 0, roi_checked.stdout + roi_checked.stderr
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert found and all("KX***M" in row and "denied" in row for row in found), found
    assert image_width and image_width > 0
    assert "no passes match" in no_match and searched_url == base + "/passes"
    assert missing_image[0] == 404 and "no evidence image for pass #99999" in missing_image[1]
    assert "lane 'nowhere' unknown; lanes: entry-1" in bad_lane

    assert re.search(r"entry-1: open: opened", opened_message), opened_message
    assert "visitor booked by phone" in audit_shown and "console:olga via " in audit_shown
    assert opens_after == opens_before + 1
    assert [row[:3] + row[4:] for row in audit] == [
        (LANE, "open", "socket", "visitor booked by phone", "opened")]
    assert re.fullmatch(r"console:olga via \S+ \(uid \d+, pid \d+\)", audit[0][3]), audit  # the console user

    assert no_csrf[0] == 403 and "CSRF" in no_csrf[1]
    assert audit_after_forgery == 1

    assert "allow list: KX904LM added" in list_message and "KX904LM" in entries
    assert stored_list == [("allow", "KX904LM", "console:olga")]  # the deny entry is gone
    assert admitted.opened is True and admitted.main_row and admitted.main_row["kind"] == "check_in"
    assert booked.returncode == 0, booked.stderr
    assert banned.opened is False and banned.rows and "deny_listed" in banned.rows[0]["reason"]
    assert removed_message == "deny list: AB123CD removed; applies from the next vehicle"
    assert readmitted.opened is True and readmitted.main_row
    assert "booking_valid" in readmitted.main_row["reason"]

    assert viewer_forms == 0
    assert viewer_post[0] == 403 and "victor is a viewer (read-only)" in viewer_post[1]
    assert viewer_list[0] == 403
    assert final_audit == 1

    assert wrong[:ATTEMPTS] == ["wrong user name or password"] * ATTEMPTS
    assert wrong[ATTEMPTS].startswith("too many failed logins: try again in")
    assert limited.startswith("too many failed logins")
