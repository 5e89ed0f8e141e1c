"""The live view in a real browser (Playwright driving Debian's chromium) against a real daemon with the gate
emulator on a pty, a recorded camera and the bundled detector, and `parkgate console serve` beside it: the
daemon boxes the plate of the car at the barrier with its width against the recommended minimum (read by
the page's script from /live/LANE.json, shown under the frame), the safety loop and gate are shown as the
emulator sets them, an operator drags the region of interest on the frame, adds a point and saves it into
the config file (comments kept; `parkgate config check` passes), a bad region is refused with the reason,
and a viewer can neither see the editor nor save."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from console_browsing import answer, log_in

from edge.tools.console import ConsoleProcess, add_user, console_section
from edge.tools.demo import harness as h
from edge.tools.emulator.launch import running_emulator
from edge.tools.net import free_tcp_port
from edge.vision.types import MIN_PLATE_WIDTH_PX

LANE = "entry-1"
VISITOR = h.Vehicle("visitor", "KX 904-LM", seed=622)
PLATE_FRAC = (0.14, 0.16)  # of the 960 px frame: plates 134-154 px wide (boxes 146-183 px: a margin)
OPERATOR = ("olga", "operator-pass-1")
VIEWER = ("victor", "viewer-pass-12")
ROI = [[0.05, 0.2], [0.95, 0.2], [0.95, 1.0], [0.05, 1.0]]
COMMENT = "# north gate: the approach is the lower four fifths of the picture"
SECTION = f"section[data-lane='{LANE}']"


def parkgate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True,
                          timeout=60, check=False)


def drag(page: Any, handle: str, to: tuple[float, float]) -> None:
    """Drag ``handle`` to ``to`` (fractions of the lane's frame) with the mouse."""
    frame = page.locator(f"{SECTION} .frame").bounding_box()
    start = page.locator(handle).bounding_box()
    page.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
    page.mouse.down()
    x, y = frame["x"] + to[0] * frame["width"], frame["y"] + to[1] * frame["height"]
    page.mouse.move(x, y, steps=8)
    page.mouse.up()


def test_live_boxes_loops_and_the_roi_dragged_and_saved_in_a_browser(tmp_path: Path, browser: Any) -> None:
    state = tmp_path / "state"
    camera = h.LaneCamera(tmp_path / "camera", LANE, plate_frac=PLATE_FRAC)
    port = free_tcp_port()
    base = f"http://127.0.0.1:{port}"
    with running_emulator(tmp_path, name=LANE) as emulator:
        config = tmp_path / "parkgate.toml"
        config.write_text(COMMENT + "\n" + h.toml_text(
            {"gateway": {"id": "gw-live", "lot_id": "LOT-L", "state_dir": str(state)},
             "console": console_section(port)},
            [{"name": LANE, "gate": {"port": str(emulator.link), "baudrate": 115200},
              "camera": {"source": str(camera.manifest), "burst_frames": 3, "roi": ROI}}]))
        daemon = h.start_daemon(config, tmp_path / "daemon.log")
        console = ConsoleProcess(config, port, tmp_path / "console.log").start()
        try:
            assert add_user(config, OPERATOR[0], "operator", OPERATOR[1]).returncode == 0
            assert add_user(config, VIEWER[0], "viewer", VIEWER[1]).returncode == 0
            camera.show(VISITOR)  # a car at the barrier, not yet on the presence loop: the lane is idle
            operator = browser.new_context()
            page = log_in(operator, base, *OPERATOR)
            page.wait_for_selector("table#lanes")
            health_loops = page.inner_text(f"tr[data-lane='{LANE}'] td.loops")
            page.goto(base + "/live", wait_until="domcontentloaded")
            page.wait_for_selector(f"{SECTION} ul.plates li[data-width]", timeout=30_000)
            plate = page.locator(f"{SECTION} ul.plates li[data-width]").first
            plate_text, plate_width = plate.inner_text(), int(plate.get_attribute("data-width") or 0)
            plate_class = plate.get_attribute("class")
            info = page.evaluate(f"fetch('/live/{LANE}.json').then(r => r.json())")
            emulator.command("safety 1")
            page.wait_for_function(f"() => document.querySelector(\"{SECTION} .lane-state\").textContent"
                                   ".includes('safety loop occupied')", timeout=15_000)
            loops = page.inner_text(f"{SECTION} .lane-state")
            emulator.command("safety 0")
            page.wait_for_function(f"() => document.querySelector(\"{SECTION} .lane-state\").textContent"
                                   ".includes('safety loop clear')", timeout=15_000)

            # the operator drags two corners of the region, adds a point on an edge and saves it
            page.click(f"{SECTION} button.roi-edit")
            handles = page.locator(f"{SECTION} .handle").count()
            drag(page, f"{SECTION} .handle[data-index='0']", (0.1, 0.35))
            drag(page, f"{SECTION} .handle[data-index='1']", (0.9, 0.35))
            page.click(f"{SECTION} button.roi-add")
            after_add = page.locator(f"{SECTION} .handle").count()
            dragged = page.input_value(f"{SECTION} form.roi-save input[name=roi]")
            edit_points = page.get_attribute(f"{SECTION} polygon.edit", "points")
            page.click(f"{SECTION} form.roi-save button[type=submit]")
            page.wait_for_selector("#message")
            saved_message = page.inner_text("#message")
            saved_text = config.read_text()
            checked = parkgate("config", "check", str(config))
            current = page.get_attribute(f"{SECTION} svg.roi polygon.current", "points")

            # a region of two points is refused with the reason, and the file is left alone
            page.fill(f"{SECTION} form.roi-save input[name=roi]", "0.1,0.4;0.9,0.4")
            page.click(f"{SECTION} form.roi-save button[type=submit]")
            page.wait_for_selector("#message.error")
            refused = page.inner_text("#message")
            after_refusal = config.read_text()
            operator.close()

            # a viewer sees the live view but no editor, and cannot save even with a valid CSRF token
            viewer = browser.new_context()
            view_page = log_in(viewer, base, *VIEWER)
            view_page.wait_for_selector("table#lanes")
            view_page.goto(base + "/live", wait_until="domcontentloaded")
            viewer_forms = view_page.locator("form.roi-save").count()
            csrf = view_page.get_attribute("form.logout input[name=csrf]", "value")
            viewer_post = answer(viewer.request.post(base + "/live/roi", form={
                "csrf": csrf or "", "lane": LANE, "roi": "0,0;1,0;1,1"}))
            no_csrf = answer(viewer.request.post(base + "/live/roi", form={
                "lane": LANE, "roi": "0,0;1,0;1,1"}))
            viewer.close()
            after_viewer = config.read_text()
        finally:
            console.stop()
            assert daemon.stop() == 0
    low, high = (f * h.FRAME_SIZE[0] for f in PLATE_FRAC)
    assert 0.8 * low <= plate_width <= 1.3 * high, plate_text  # the box is on the plate, as wide as it
    assert plate_text == f"plate {plate_width} px wide: at least the recommended {MIN_PLATE_WIDTH_PX} px"
    assert plate_class == "wide"
    assert info["frame"] == list(h.FRAME_SIZE) and info["min_width_px"] == MIN_PLATE_WIDTH_PX
    first = info["plates"][0]  # a later frame of the recording: its own plate width
    assert round(first["box"][2] - first["box"][0]) == first["width_px"] and first["in_roi"] and first["wide"]
    assert 0.8 * low <= first["width_px"] <= 1.3 * high
    assert health_loops == "clear, clear"
    assert loops.startswith("phase idle, gate closed, presence loop clear, safety loop occupied, link up")

    assert handles == 4 and after_add == 5
    points = [tuple(float(v) for v in p.split(",")) for p in dragged.split(";")]
    assert len(points) == 5 and edit_points == dragged.replace(";", " ")
    assert abs(points[0][0] - 0.1) < 0.02 and abs(points[0][1] - 0.35) < 0.02
    assert abs(points[1][0] - 0.9) < 0.02 and abs(points[1][1] - 0.35) < 0.02
    assert saved_message.startswith(f"saved to {config}: lane {LANE} roi = [[0.1")
    assert "applies it at its next start" in saved_message
    assert saved_text.startswith(COMMENT + "\n") and "roi = [[0.1" in saved_text
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert current == dragged.replace(";", " ")  # the page now outlines the saved region

    assert "not saved: lanes[0].camera.roi" in refused and "3 to 64" in refused
    assert after_refusal == saved_text

    assert viewer_forms == 0
    assert viewer_post[0] == 403 and "viewer (read-only)" in viewer_post[1]
    assert no_csrf[0] == 403 and "CSRF" in no_csrf[1]
    assert after_viewer == saved_text
