"""`parkgate lpr read` on real files through the committed ONNX models: a video (--frames, --every, --json,
--annotate, --roi), images, plate crops, and sources that cannot be opened or decoded."""

import json
import re

import cv2
import numpy as np
import pytest

from edge.cli import main as cli_main
from edge.tools.net import free_tcp_port
from edge.vision import synth
from edge.vision.camera import open_capture
from edge.vision.roi import Roi
from edge.vision.sources import Backoff, SourceError, is_image, read_frames

CAR, SIGN = "KT 482-MB", "ZX 735-PR"  # SIGN: a plate-like sign high up at the left, outside the lane
FRAMES = 5
LANE_ROI = "0,0.45;1,0.45;1,1;0,1"  # the lower 55 % of the frame, where the cars pass


def lane_frame(index: int) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """A 1280x720 frame of a car approaching (its plate box returned) under a sign that reads like a plate."""
    rng = np.random.default_rng(70 + index)
    frame, box = synth.render_frame(CAR, "eu", rng, plate_width=190 + 15 * index)
    sign = synth.render_plate(SIGN, "eu", np.random.default_rng(90))
    quad = synth.plate_quad((200, 110), 220, sign.shape[1] / sign.shape[0], np.random.default_rng(91), 0.2)
    synth.warp_into(frame, sign, quad)
    return frame, box


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> tuple[str, list[tuple[float, float, float, float]]]:
    """An MPEG-4 video of FRAMES lane frames, and the car plate's box in each."""
    path = tmp_path_factory.mktemp("lane") / "pass.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (1280, 720))
    boxes = []
    for index in range(FRAMES):
        frame, box = lane_frame(index)
        writer.write(frame)
        boxes.append(box)
    writer.release()
    return str(path), boxes


def json_lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def overlap(a, b) -> float:
    """Intersection over union of two x1, y1, x2, y2 boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union


def test_json_gives_one_object_per_kept_frame_with_every_read(video, capsys):
    path, boxes = video
    assert cli_main(["lpr", "read", path, "--frames", "3", "--every", "2", "--json"]) == 0
    records = json_lines(capsys)
    assert [r["frame"] for r in records] == [0, 2, 4]
    assert {(r["source"], r["width"], r["height"]) for r in records} == {(path, 1280, 720)}
    for record in records:
        car = [read for read in record["reads"] if overlap(read["box"], boxes[record["frame"]]) > 0.5]
        assert len(car) == 1, record
        read = car[0]
        assert set(read) == {"text", "raw_text", "confidence", "box", "plate_width_px", "detector_score"}
        expected_width = boxes[record["frame"]][2] - boxes[record["frame"]][0]
        # a plate seen at both pyramid scales gets the union of the two boxes (detector.merge): a little wide
        assert read["plate_width_px"] == pytest.approx(expected_width, rel=0.2)
        assert 0 < read["confidence"] <= 1 and 0 < read["detector_score"] <= 1
    texts = [read["text"] for record in records for read in record["reads"]]
    assert "ZX735PR" in texts and "KT482MB" in texts


# An L: the whole frame but its top-left corner, where the sign is. Its bounds hold the sign, so the sign
# is detected in the crop and dropped because its centre lies outside the polygon.
L_ROI = "0.4,0;1,0;1,1;0,1;0,0.3;0.4,0.3"


@pytest.mark.parametrize("roi", [LANE_ROI, L_ROI, "0,324;1280,324;1280,720;0,720"])
def test_roi_drops_the_read_outside_the_lane(roi, video, capsys):
    path, boxes = video
    assert cli_main(["lpr", "read", path, "--json"]) == 0
    unrestricted = json_lines(capsys)[0]["reads"]
    assert any(read["text"] == "ZX735PR" for read in unrestricted)
    assert cli_main(["lpr", "read", path, "--json", "--roi", roi]) == 0
    reads = json_lines(capsys)[0]["reads"]
    assert reads and all(read["text"] != "ZX735PR" for read in reads)
    lane = Roi.parse(roi)
    for read in reads:
        x1, y1, x2, y2 = read["box"]
        assert lane.contains((x1 + x2) / 2, (y1 + y2) / 2, 1280, 720)
    assert overlap(reads[0]["box"], boxes[0]) > 0.5


def test_a_pixel_roi_for_a_larger_camera_is_refused_naming_the_source(video, capsys):
    path, _ = video
    assert cli_main(["lpr", "read", path, "--roi", "0,500;1920,500;1920,1080;0,1080"]) == 1
    err = capsys.readouterr().err
    assert f"{path}: region of interest 0,500;1920,500;1920,1080;0,1080 has point(s)" in err
    assert "outside the 1280x720 frame" in err


def test_annotate_draws_the_roi_and_boxes_on_numbered_frames(video, tmp_path, capsys):
    path, _ = video
    out = tmp_path / "lane.png"
    assert cli_main(["lpr", "read", path, "--frames", "2", "--roi", LANE_ROI, "--annotate", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    written = [tmp_path / "lane-0001.png", tmp_path / "lane-0002.png"]
    assert f"{path}#0: annotated {written[0]}" in lines and f"{path}#1: annotated {written[1]}" in lines
    assert not out.exists()
    reads = [line for line in lines if line.startswith(f"{path}#0: ") and "box=" in line]
    x1, y1, x2, y2 = (int(v) for v in reads[0].split("box=")[1].split()[0].split(","))
    original, _ = lane_frame(0)
    for image_path in written:
        image = cv2.imread(str(image_path))
        assert image.shape == (720, 1280, 3)
    image = cv2.imread(str(written[0]))
    # The ROI's top edge (y = 0.45 * 720 = 324) is yellow across the frame; the best box's bottom edge green.
    assert (image[324, 100:1200] == (0, 255, 255)).all()
    assert (image[y2, x1 + 5 : x2 - 5] == (0, 255, 0)).all()
    # Away from the drawings the frame is the video's frame (MPEG-4 decoded: close, not equal).
    assert np.abs(image[600:700, 20:80].astype(int) - original[600:700, 20:80].astype(int)).mean() < 8


def test_one_frame_is_annotated_under_the_given_name(video, tmp_path, capsys):
    path, _ = video
    out = tmp_path / "frame.jpg"
    assert cli_main(["lpr", "read", path, "--annotate", str(out)]) == 0
    assert cv2.imread(str(out)).shape == (720, 1280, 3)
    assert capsys.readouterr().out.splitlines()[-1] == f"{path}#0: annotated {out}"


def test_text_output_names_each_frame_and_the_plate_width(video, capsys):
    path, boxes = video
    assert cli_main(["lpr", "read", path, "--frames", "2", "--roi", LANE_ROI]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(": ")[0] for line in lines] == [f"{path}#0", f"{path}#1"]
    width = int(lines[0].split("width=")[1].split("px")[0])
    assert width == pytest.approx(boxes[0][2] - boxes[0][0], rel=0.15)


def test_images_and_plate_crops_still_read(tmp_path, capsys):
    frame, _ = lane_frame(1)
    cv2.imwrite(str(tmp_path / "frame.png"), frame)
    cv2.imwrite(str(tmp_path / "plate.png"), synth.render_plate(SIGN, "eu", np.random.default_rng(90)))
    assert cli_main(["lpr", "read", str(tmp_path / "frame.png"), "--roi", LANE_ROI]) == 0
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'frame.png'}: ")
    assert cli_main(["lpr", "read", "--crop", str(tmp_path / "plate.png")]) == 0
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'plate.png'}: ZX735PR confidence=")


def test_sources_that_cannot_be_opened_are_named_and_the_rest_still_read(video, tmp_path, capsys):
    path, _ = video
    garbage = tmp_path / "broken.mp4"
    garbage.write_bytes(bytes(range(256)) * 64)
    missing = tmp_path / "missing.avi"
    url = f"rtsp://127.0.0.1:{free_tcp_port()}/lane"  # nothing listens there
    assert cli_main(["lpr", "read", str(garbage), str(missing), url, "/dev/video-none", path, "--json"]) == 1
    captured = capsys.readouterr()
    assert f"{garbage}: cannot open it as a video or stream" in captured.err
    assert f"{missing}: no such file or device" in captured.err
    assert f"{url}: cannot open it as a video or stream" in captured.err
    assert "/dev/video-none: no such file or device" in captured.err
    assert "expected an image (JPEG/PNG/BMP), a video file, an rtsp:// URL" in captured.err
    assert [json.loads(line)["source"] for line in captured.out.splitlines()] == [path]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--roi", "0,0;1,1"], "--roi: '0,0;1,1' has 2 point(s)"),
        (["--roi", "0,0;1,0;1,1", "--crop"], "--roi applies to camera frames, not to --crop"),
        (["--annotate", "out.txt"], "--annotate out.txt: cannot write it"),
        (["--annotate", "no/such/out.jpg"], "cannot write it; give a .jpg or .png path in an existing"),
    ],
)
def test_bad_options_are_refused_before_reading(argv, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match=re.escape(message)):
        cli_main(["lpr", "read", "frame.jpg", *argv])


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_frames_and_every_must_be_whole_numbers_of_at_least_one(value, capsys):
    for option in ("--frames", "--every"):
        with pytest.raises(SystemExit):
            cli_main(["lpr", "read", "frame.jpg", option, value])
        assert "is not a whole number of at least 1" in capsys.readouterr().err


# --- edge.vision.sources: files end, live sources back off ----------------------------------------------


def test_a_file_ends_with_fewer_frames_than_asked(video):
    path, _ = video
    frames = list(read_frames(path, count=10, every=2))
    assert [f.index for f in frames] == [0, 2, 4] and frames[0].image.shape == (720, 1280, 3)
    assert frames[1].label == f"{path}#2"


def test_a_video_shorter_than_asked_is_read_to_its_end_and_said_so(video, capsys):
    path, _ = video
    assert cli_main(["lpr", "read", path, "--frames", "4", "--every", "2", "--json"]) == 0
    captured = capsys.readouterr()
    assert [json.loads(line)["frame"] for line in captured.out.splitlines()] == [0, 2, 4]
    assert captured.err.strip() == f"{path}: ended after 3 of 4 frames"


def test_a_live_source_that_stops_giving_frames_backs_off_then_ends(video):
    """A stream (by its URL) whose frames stop after the recording's last one: each failed read waits
    longer (doubling, capped), and the reads give up after max_failures in a row instead of spinning."""
    path, _ = video
    waits: list[float] = []
    backoff = Backoff(retry_s=0.1, max_retry_s=0.5, max_failures=6, sleep=waits.append)
    opened = []

    def opener(target):
        opened.append(target)
        return open_capture(path)

    frames = list(read_frames("rtsp://127.0.0.1:9/lane", count=FRAMES + 3, backoff=backoff, opener=opener))
    assert opened == ["rtsp://127.0.0.1:9/lane"]
    assert [f.index for f in frames] == list(range(FRAMES))
    assert waits == [0.1, 0.2, 0.4, 0.5, 0.5, 0.5]


def test_a_live_source_without_any_decodable_frame_is_an_error_naming_it(video):
    path, _ = video
    drained = open_capture(path)
    while drained.grab():
        pass
    waits: list[float] = []
    backoff = Backoff(retry_s=0.05, max_retry_s=0.2, max_failures=4, sleep=waits.append)
    with pytest.raises(SourceError, match=r"^rtsp://127.0.0.1:9/lane: no decodable frame after 5 tries"):
        list(read_frames("rtsp://127.0.0.1:9/lane", backoff=backoff, opener=lambda target: drained))
    assert waits == [0.05, 0.1, 0.2, 0.2]


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.9])
@pytest.mark.parametrize(("suffix", "codec"), [(".avi", "MJPG"), (".mp4", "mp4v")])
def test_a_damaged_video_gives_whole_frames_or_an_error_naming_it(tmp_path, suffix, codec, cut):
    path = tmp_path / f"pass{suffix}"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), 10.0, (320, 240))
    for index in range(10):
        writer.write(np.full((240, 320, 3), index * 20, np.uint8))
    writer.release()
    data = bytearray(path.read_bytes())
    data[len(data) // 4 : len(data) // 4 + 200] = bytes(200)  # a damaged stretch
    damaged = tmp_path / f"damaged{suffix}"
    damaged.write_bytes(bytes(data[: int(len(data) * cut)]))
    try:
        frames = list(read_frames(str(damaged), count=20))
    except SourceError as error:
        assert str(error).startswith(f"{damaged}: ")
        return
    assert 0 < len(frames) < 10 and all(f.image.shape == (240, 320, 3) for f in frames)


def test_image_files_are_told_from_streams_by_name():
    assert is_image("frame.JPG") and is_image("/srv/lane/f.png") and not is_image("pass.mp4")
    assert not is_image("http://127.0.0.1:8080/snapshot.jpg") and not is_image("0")


def test_an_undecodable_image_is_named(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(SourceError, match=r"bad.jpg: cannot read image \(expected a JPEG/PNG/BMP file\)"):
        list(read_frames(str(bad)))
