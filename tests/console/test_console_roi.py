"""The live view's region of interest saved into the config file (edge.console.config_file): edited with
tomlkit keeping the file's other keys and comments, validated as `parkgate config check` validates it,
written atomically with the file's mode; a file the console cannot write gives the line to paste. And the
pure lines the live page shows: a lane's state and loops, the plates against the recommended width."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.parse
from pathlib import Path

import pytest

from edge.config import ConfigError, load_config, parse_config
from edge.console.app import BadForm, lane_state_text, plate_lines, roi_proposal
from edge.console.config_file import config_with_roi, roi_line, save_roi
from edge.tools.console import ConsoleProcess, add_user, console_section, log_in
from edge.tools.demo import harness as h
from edge.tools.net import free_tcp_port
from edge.vision.types import MIN_PLATE_WIDTH_PX

COMMENT = "# the gateway at the north gate\n"
CONFIG = """# the gateway at the north gate
[gateway]
id = "gw-north"   # printed on the receipts

[[lanes]]
name = "entry-1"
[lanes.gate]
port = "/dev/ttyAMA0"
[lanes.camera]
source = "0"
roi = [[0.05, 0.2], [0.95, 0.2], [0.95, 1.0], [0.05, 1.0]]  # the approach
fps = 10

[[lanes]]
name = "exit-1"
camera = { source = "1" }
"""


def test_the_roi_is_written_into_the_lane_keeping_the_rest_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "parkgate.toml"
    path.write_text(CONFIG)
    path.chmod(0o640)
    cfg = save_roi(path, "entry-1", [(0.1, 0.4), (0.9, 0.4), (0.9, 1.0), (0.1, 1.0)])
    text = path.read_text()
    assert text == CONFIG.replace("roi = [[0.05, 0.2], [0.95, 0.2], [0.95, 1.0], [0.05, 1.0]]",
                                  "roi = [[0.1, 0.4], [0.9, 0.4], [0.9, 1.0], [0.1, 1.0]]")
    assert cfg.lanes[0].camera.roi == load_config(path).lanes[0].camera.roi
    assert [list(p) for p in cfg.lanes[0].camera.roi] == [[0.1, 0.4], [0.9, 0.4], [0.9, 1.0], [0.1, 1.0]]
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 and not list(tmp_path.glob(".*.tmp"))
    pixels = save_roi(path, "exit-1", [(100.0, 200.0), (900.0, 200.0), (900.0, 700.0)])
    assert 'camera = { source = "1", roi = [[100, 200], [900, 200], [900, 700]]}' in path.read_text()
    assert pixels.lanes[1].camera.roi and "# the approach" in path.read_text()
    checked = subprocess.run([sys.executable, "-m", "edge.cli", "config", "check", str(path)],
                             capture_output=True, text=True, timeout=60, check=False)
    assert checked.returncode == 0, checked.stdout


def test_a_lane_without_a_camera_table_gets_one() -> None:
    two = '[[lanes]]\nname = "a"\ngate = { port = "/dev/a" }\n[[lanes]]\nname = "b"  # second\n'
    text = config_with_roi(two, 1, [(0.0, 0.5), (1.0, 0.5), (1.0, 1.0)])
    cfg = parse_config(text)
    assert cfg.lanes[1].camera.roi and not cfg.lanes[0].camera.roi and "# second" in text
    with pytest.raises(ValueError, match="no \\[\\[lanes\\]\\] entry number 3"):
        config_with_roi('[[lanes]]\nname = "a"\n', 2, [(0.0, 0.5), (1.0, 0.5), (1.0, 1.0)])


def test_a_config_that_would_fail_config_check_is_not_written(tmp_path: Path) -> None:
    path = tmp_path / "parkgate.toml"
    path.write_text(CONFIG)
    with pytest.raises(ConfigError, match=r"lanes\[0\]\.camera\.roi"):
        save_roi(path, "entry-1", [(0.1, 0.1), (0.9, 0.9), (0.1, 0.9), (0.9, 0.1)])  # crossing edges
    broken = CONFIG.replace('id = "gw-north"', 'id = ""')  # the file is already wrong elsewhere
    path.write_text(broken)
    with pytest.raises(ConfigError, match="gateway.id"):
        save_roi(path, "entry-1", [(0.1, 0.4), (0.9, 0.4), (0.9, 1.0)])
    assert path.read_text() == broken and not list(tmp_path.glob(".*.tmp"))


def test_a_config_the_console_cannot_write_gives_the_line_to_paste(tmp_path: Path) -> None:
    """A directory the console's user cannot write (as /etc/parkgate under ProtectSystem=strict): a 0555
    directory, the save run without CAP_DAC_OVERRIDE (setpriv) when the tests run as root."""
    directory = tmp_path / "etc"
    directory.mkdir()
    path = directory / "parkgate.toml"
    path.write_text(CONFIG)
    directory.chmod(0o555)
    script = ("import sys; from pathlib import Path; from edge.console.config_file import NotWritable, "
              "save_roi\ntry:\n    save_roi(Path(sys.argv[1]), 'entry-1', "
              "[(0.1, 0.4), (0.9, 0.4), (0.9, 1.0)])\n"
              "except NotWritable as exc:\n    print(exc); print(exc.line)\n")
    command = [sys.executable, "-c", script, str(path)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("root writes any directory and setpriv (util-linux) is missing to drop that")
        command = [setpriv, "--bounding-set=-dac_override", "--", *command]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False,
                             cwd=Path(__file__).resolve().parents[2])
    finally:
        directory.chmod(0o755)
    assert out.returncode == 0, out.stderr
    message, line = out.stdout.splitlines()
    assert message == f"cannot write the config file {path} (Permission denied)"
    assert line == "roi = [[0.1, 0.4], [0.9, 0.4], [0.9, 1]]"
    assert line == roi_line([(0.1, 0.4), (0.9, 0.4), (0.9, 1.0)])
    assert path.read_text() == CONFIG and [p.name for p in directory.iterdir()] == ["parkgate.toml"]


def test_the_console_says_what_to_paste_when_it_cannot_write_the_config(tmp_path: Path) -> None:
    """`parkgate console serve` with a config in a directory it cannot write (a 0555 directory; as root,
    the console runs without CAP_DAC_OVERRIDE): Save answers 503 with the reason and the line to paste."""
    etc, state = tmp_path / "etc", tmp_path / "state"
    etc.mkdir()
    state.mkdir()
    port = free_tcp_port()
    config = etc / "parkgate.toml"
    config.write_text(COMMENT + h.toml_text(
        {"gateway": {"id": "gw-ro", "lot_id": "LOT-R", "state_dir": str(state)},
         "console": console_section(port)}, [{"name": "entry-1", "gate": {"port": "/dev/null"}}]))
    original = config.read_text()
    assert add_user(config, "olga", "operator", "operator-pass-1").returncode == 0
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("root writes any directory and setpriv (util-linux) is missing to drop that")
        prefix = [setpriv, "--bounding-set=-dac_override", "--"]
    etc.chmod(0o555)
    try:
        with ConsoleProcess(config, port, tmp_path / "console.log", prefix) as console:
            opener = log_in(console.url, "olga", "operator-pass-1")
            with opener.open(console.url + "/live", timeout=30) as response:
                csrf = re.search(r'name="csrf" value="([^"]+)"', response.read().decode())
            assert csrf is not None
            form = urllib.parse.urlencode({"csrf": csrf.group(1), "lane": "entry-1",
                                           "roi": "0.1,0.4;0.9,0.4;0.9,1"}).encode()
            with pytest.raises(urllib.error.HTTPError) as refused:
                opener.open(console.url + "/live/roi", form, timeout=30)
            body = refused.value.read().decode()
    finally:
        etc.chmod(0o755)
    assert refused.value.code == 503
    assert f"not saved: cannot write the config file {config} (Permission denied)" in body
    assert "Put this line in lane entry-1&#39;s [lanes.camera]" in body
    assert '<pre id="roi-toml">roi = [[0.1, 0.4], [0.9, 0.4], [0.9, 1]]</pre>' in body
    assert config.read_text() == original


def test_a_typed_roi_is_checked_like_config_check_and_given_as_a_config_line() -> None:
    lanes = ("entry-1", "exit-1")
    fractions = roi_proposal("exit-1", " 0.1,0.4;0.9,0.4;0.9,1 ", lanes)
    assert fractions == {"lane": "exit-1", "svg": "0.1,0.4 0.9,0.4 0.9,1", "fractional": True,
                         "toml": "roi = [[0.1, 0.4], [0.9, 0.4], [0.9, 1]]", "text": "0.1,0.4;0.9,0.4;0.9,1",
                         "points": [(0.1, 0.4), (0.9, 0.4), (0.9, 1.0)]}
    pixels = roi_proposal("entry-1", "100,200;900,200;900,700", lanes)
    assert pixels["fractional"] is False and pixels["toml"] == "roi = [[100, 200], [900, 200], [900, 700]]"
    assert parse_config("[[lanes]]\n[lanes.camera]\n" + pixels["toml"] + "\n").lanes[0].camera.roi
    for lane, text, fragment in [("nowhere", "0,0;1,0;1,1", "lane 'nowhere' unknown"),
                                 ("exit-1", "0,0;1,1", "lanes[1].camera.roi"),
                                 ("entry-1", "0.5,0.5;2,0.5;900,700", "lanes[0].camera.roi"),
                                 ("entry-1", "0.1,0.2;" * 130, "longer than 1024")]:
        with pytest.raises(BadForm, match=re.escape(fragment)):
            roi_proposal(lane, text, lanes)


def test_the_lane_state_line_names_the_phase_gate_and_loops() -> None:
    state = {"phase": "idle", "gate_position": "closed", "presence": True, "safety": False, "link_up": True,
             "camera": {"state": "ok"}}
    assert lane_state_text(state) == ("phase idle, gate closed, presence loop occupied, safety loop clear, "
                                      "link up, camera ok")
    old = lane_state_text({"phase": "idle", "link_up": False, "held": True, "stale": True})
    assert old == ("phase idle, gate -, presence loop -, safety loop -, link DOWN, HELD OPEN, camera - "
                   "(STALE: the daemon is not refreshing its status)")
    assert lane_state_text(None) == "no daemon status"
    assert "NOT SERVING: no port" in lane_state_text({"phase": "down", "serving": False, "error": "no port"})


def test_plate_lines_judge_each_width_against_the_recommended_minimum() -> None:
    now = time.time()
    box = {"x1": 10.0, "y1": 20.0, "x2": 130.0, "y2": 50.0, "score": 0.9, "in_roi": True, "width_px": 120}
    narrow = {**box, "x2": 70.0, "width_px": 60, "in_roi": False}
    info = {"at": now, "min_width_px": MIN_PLATE_WIDTH_PX, "boxes": [box, narrow], "note": ""}
    wide_line, narrow_line = plate_lines(info, now)
    assert wide_line["text"] == f"plate 120 px wide: at least the recommended {MIN_PLATE_WIDTH_PX} px"
    assert wide_line["wide"] and wide_line["box"] == [10.0, 20.0, 130.0, 50.0]
    assert narrow_line["text"] == (
        f"plate 60 px wide: under the recommended {MIN_PLATE_WIDTH_PX} px: zoom in or move the camera closer "
        "(outside the region of interest: not read)")
    assert plate_lines({**info, "boxes": []}, now) == [{"text": "no plate in view"}]
    assert plate_lines({**info, "boxes": [], "note": "lane busy"}, now) == [{"text": "lane busy"}]
    stale = [{"text": "no recent frame from the daemon (is parkgate running?)"}]
    assert plate_lines(info, now + 60) == stale and plate_lines(None, now) == stale


def test_plates_written_before_the_clock_stepped_back_are_not_shown_as_recent() -> None:
    """The daemon wrote the lane's boxes, then stopped, and NTP stepped the clock back 3 days: the boxes are
    dated after now; they counted as recent (the live page showed the old plates for 3 days instead of
    asking whether parkgate runs). One rounded to the millisecond, a hair after now, is recent."""
    now = time.time()
    box = {"x1": 10.0, "y1": 20.0, "x2": 130.0, "y2": 50.0, "score": 0.9, "in_roi": True, "width_px": 120}
    info = {"at": round(now, 3), "min_width_px": MIN_PLATE_WIDTH_PX, "boxes": [box], "note": ""}
    stale = [{"text": "no recent frame from the daemon (is parkgate running?)"}]
    assert plate_lines(info, now - 3 * 86_400) == stale
    assert plate_lines(info, now - 0.0004)[0]["width_px"] == 120


def test_live_info_reads_the_daemon_files_and_survives_bad_ones(tmp_path: Path) -> None:
    from edge.console.app import live_info
    from edge.daemon import liveview

    cfg = parse_config(f'[gateway]\nstate_dir = "{tmp_path}"\n[[lanes]]\nname = "entry-1"\n')
    liveview.live_dir(tmp_path).mkdir(mode=0o700)
    nothing = live_info(cfg, "entry-1")
    assert nothing["state"] == "no daemon status" and nothing["frame"] is None
    assert nothing["plates"] == [{"text": "no recent frame from the daemon (is parkgate running?)"}]
    assert liveview.watch_path(tmp_path, "entry-1").exists()  # asking is watching
    info = liveview.frame_info("entry-1", 7, 960, 540, liveview.live_boxes([], None, 960, 540), "")
    liveview.boxes_path(tmp_path, "entry-1").write_text(json.dumps(info))
    assert live_info(cfg, "entry-1")["plates"] == [{"text": "no plate in view"}]
    liveview.boxes_path(tmp_path, "entry-1").write_text(json.dumps({**info, "boxes": [{"x1": "?"}]}))
    bad = live_info(cfg, "entry-1")
    assert bad["plates"][0]["text"].startswith("unreadable ") and bad["frame"] is None
