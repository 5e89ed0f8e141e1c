"""`parkgate lpr read` on an RTSP stream: GStreamer's RTSP server (tests/vision/rtsp_server.py, run by the
system python) streams rendered lane frames as H.264 on a free loopback port; OpenCV's FFmpeg reads it."""

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest
from test_lpr_read import LANE_ROI, SIGN, lane_frame, overlap

from edge.cli import main as cli_main
from edge.tools.net import free_tcp_port, wait_for_tcp
from edge.tools.proc import ManagedProcess
from edge.vision import plates
from edge.vision.sources import Backoff, read_frames

SERVER = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"  # has the GObject bindings (python3-gi); the virtualenv cannot have them
LOOP = 3  # frames the server streams in a loop


def start_camera(folder: Path) -> tuple[ManagedProcess, str]:
    """Start the RTSP server on a free loopback port and wait (bounded) until it accepts connections."""
    argv = [SYSTEM_PYTHON, str(SERVER), "--check"]
    check = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if check.returncode != 0:
        pytest.fail(f"the RTSP test server cannot run: {check.stderr.strip()} (or run `make system-deps`)")
    port = free_tcp_port()
    argv = [SYSTEM_PYTHON, str(SERVER), "--port", str(port), "--frames", str(folder)]
    server = ManagedProcess(argv, folder / "rtsp_server.log").start()
    try:
        wait_for_tcp("127.0.0.1", port, timeout=20)
    except TimeoutError:
        server.stop()
        pytest.fail(f"the RTSP server did not listen within 20 s:\n{server.log_tail()}")
    return server, f"rtsp://127.0.0.1:{port}/lane"


@pytest.fixture(scope="module")
def frames_folder(tmp_path_factory) -> tuple[Path, list]:
    """frame-0000.png ... of lane frames, and the car plate's box in each."""
    folder = tmp_path_factory.mktemp("rtsp")
    boxes = []
    for index in range(LOOP):
        frame, box = lane_frame(index)
        cv2.imwrite(str(folder / f"frame-{index:04d}.png"), frame)
        boxes.append(box)
    return folder, boxes


@pytest.fixture(scope="module")
def camera(frames_folder) -> Iterator[tuple[str, list]]:
    folder, boxes = frames_folder
    server, url = start_camera(folder)
    try:
        yield url, boxes
    finally:
        server.stop()


def test_reads_frames_of_an_rtsp_stream_as_json(camera, capsys):
    url, boxes = camera
    assert cli_main(["lpr", "read", url, "--frames", "4", "--every", "2", "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["frame"] for r in records] == [0, 2, 4, 6]
    assert {(r["source"], r["width"], r["height"]) for r in records} == {(url, 1280, 720)}
    for record in records:
        car = [read for read in record["reads"] if max(overlap(read["box"], box) for box in boxes) > 0.5]
        assert car, record
    texts = [read["text"] for record in records for read in record["reads"]]
    assert plates.normalise(SIGN) in texts


def test_the_roi_drops_the_sign_and_annotate_writes_the_stream_frame(camera, tmp_path, capsys):
    url, boxes = camera
    out = tmp_path / "lane.jpg"
    assert cli_main(["lpr", "read", url, "--roi", LANE_ROI, "--json", "--annotate", str(out)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["annotation"] == str(out) and cv2.imread(str(out)).shape == (720, 1280, 3)
    assert record["reads"] and all(read["text"] != plates.normalise(SIGN) for read in record["reads"])
    assert max(overlap(record["reads"][0]["box"], box) for box in boxes) > 0.5


def test_a_stream_whose_server_dies_backs_off_and_ends(frames_folder):
    """Frames come while the server runs; once it is gone the reads fail, each failure waits longer
    (recorded here, not slept) and the source ends after max_failures instead of spinning."""
    folder, _ = frames_folder
    server, url = start_camera(folder)
    waits: list[float] = []
    try:
        frames = read_frames(url, count=10_000, backoff=Backoff(0.1, 0.4, 5, waits.append))
        first = next(frames)
        assert first.image.shape == (720, 1280, 3) and first.index == 0
        server.stop()
        rest = list(frames)  # the frames FFmpeg had buffered, then the failures
    finally:
        server.stop()
    assert len(rest) < 10_000
    assert waits == [0.1, 0.2, 0.4, 0.4, 0.4]


def test_nothing_listening_is_named(capsys):
    url = f"rtsp://127.0.0.1:{free_tcp_port()}/lane"
    assert cli_main(["lpr", "read", url]) == 1
    assert f"{url}: cannot open it as a video or stream" in capsys.readouterr().err


def test_a_camera_url_with_a_password_is_read_and_shown_without_it(camera, capsys):
    """The user and password in a camera's URL reach FFmpeg, never the output (s13 review, finding 4)."""
    url, _ = camera
    with_password = url.replace("rtsp://", "rtsp://admin:S3cret-Pass@")
    assert cli_main(["lpr", "read", with_password, "--frames", "2", "--json"]) == 0
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["source"] for r in records] == [url.replace("rtsp://", "rtsp://***@")] * 2
    assert "S3cret" not in captured.out + captured.err
    assert cli_main(["lpr", "read", with_password]) == 0
    assert capsys.readouterr().out.startswith(url.replace("rtsp://", "rtsp://***@") + "#0: ")
