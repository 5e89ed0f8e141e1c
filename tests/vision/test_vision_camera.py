import logging
import time

import cv2
import numpy as np
import pytest

from edge.vision.camera import FrameSource, is_live, open_capture, parse_source, redact_url


def write_video(path, frames: int = 12) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), i * 20, np.uint8))
    writer.release()


def test_parse_source_kinds():
    assert parse_source("0") == 0 and parse_source(2) == 2
    assert parse_source(" rtsp://cam/1 ") == "rtsp://cam/1"
    with pytest.raises(ValueError, match="camera source is empty"):
        parse_source(" ")


def test_file_source_reads_all_frames_then_finishes(tmp_path):
    path = tmp_path / "pass.avi"
    write_video(path)
    with FrameSource(str(path), queue_size=64) as source:
        assert source.finished.wait(10)
        frames = [source.get(0.1) for _ in range(12)]
    assert [f.sequence for f in frames] == list(range(12))
    assert frames[0].image.shape == (48, 64, 3)
    assert source.get(0.01) is None


def test_bounded_queue_drops_oldest(tmp_path):
    path = tmp_path / "pass.avi"
    write_video(path)
    with FrameSource(str(path), queue_size=3) as source:
        assert source.finished.wait(10)
        kept = [source.get(0.1).sequence for _ in range(3)]
    assert kept == [9, 10, 11] and source.dropped == 9


def test_reconnects_until_the_source_opens(tmp_path):
    path = tmp_path / "late.avi"
    attempts = []

    def opener(source):
        attempts.append(source)
        if len(attempts) == 3:
            write_video(path, 4)
        return open_capture(source)

    with FrameSource(str(path), queue_size=8, retry_s=0.01, opener=opener) as source:
        frame = source.get(10)
    assert frame is not None and len(attempts) >= 3 and source.reconnects >= 2


def test_looping_file_keeps_producing(tmp_path):
    path = tmp_path / "loop.avi"
    write_video(path, 3)
    with FrameSource(str(path), queue_size=2, loop=True) as source:
        deadline = time.monotonic() + 10
        seen = 0
        while seen < 8 and time.monotonic() < deadline:
            seen += source.get(1) is not None
    assert seen >= 8 and not source.finished.is_set()


def _cpu_seconds_of_this_process() -> float:
    return time.process_time()


@pytest.mark.parametrize("frames", [["empty.jpg"], ["good.jpg", "empty.jpg"]])
def test_a_recording_with_a_zero_byte_frame_backs_off_instead_of_spinning(tmp_path, frames):
    """A zero-byte frame in a recording (the daemon's recorded camera) gives no decodable frame: the
    capture thread must wait between tries, not spin a core (it used 97 % of one). CPU time of this
    whole process over 3 s of wall time stays low, and the source reports the failures."""
    import json

    from edge.daemon.camera import camera_health, open_frame_source

    (tmp_path / "empty.jpg").write_bytes(b"")
    cv2.imwrite(str(tmp_path / "good.jpg"), np.full((48, 64, 3), 128, np.uint8))
    manifest = tmp_path / "camera.json"
    manifest.write_text(json.dumps({"fps": 1, "start_epoch": time.time() - 1, "frames": frames}))
    source = open_frame_source(str(manifest), 10)
    try:
        time.sleep(0.5)
        cpu_before = _cpu_seconds_of_this_process()
        time.sleep(3.0)
        cpu = _cpu_seconds_of_this_process() - cpu_before
    finally:
        source.stop(2.0)
    print(f"frames {frames}: process CPU {cpu:.3f} s in 3 s")
    assert cpu < 0.5, f"capture thread used {cpu:.2f} s of CPU in 3 s"
    assert source.read_failures >= 1
    if frames == ["empty.jpg"]:
        assert source.last_frame_at is None
        assert camera_health(source, 2, time.monotonic())["state"] == "stalled"


@pytest.mark.parametrize(("source", "shown"), [
    ("rtsp://admin:S3cret-Pass@10.0.0.5:554/Streaming/101", "rtsp://***@10.0.0.5:554/Streaming/101"),
    ("rtsp://admin@cam/lane", "rtsp://***@cam/lane"),
    ("rtsp://admin:p@ss/w0rd@cam:554/lane?channel=1", "rtsp://***@cam:554/lane?channel=1"),  # unencoded
    ("rtsp://10.0.0.5:554/lane", "rtsp://10.0.0.5:554/lane"),
    ("/srv/lane/pass.mp4", "/srv/lane/pass.mp4"),
    ("/dev/video0", "/dev/video0"),
    (0, "0"),
])
def test_redact_url_hides_the_user_and_password(source, shown):
    assert redact_url(source) == shown


def test_a_camera_that_cannot_be_opened_is_logged_without_its_password(caplog):
    """The capture thread logs a camera it cannot open about every 10 s: never with its password."""
    url = "rtsp://admin:S3cret-Pass@127.0.0.1:9/lane"  # nothing listens on port 9: refused at once
    with caplog.at_level(logging.WARNING, logger="edge.vision.camera"):
        source = FrameSource(url, retry_s=0.05, max_retry_s=0.05).start()
        try:
            deadline = time.monotonic() + 20
            while source.read_failures < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            source.stop()
    assert source.read_failures >= 2
    assert "rtsp://***@127.0.0.1:9/lane could not be opened" in caplog.text
    assert "S3cret" not in caplog.text and "admin" not in caplog.text


def test_lpr_read_names_a_camera_without_its_password(capsys):
    from edge.cli import main as cli_main

    assert cli_main(["lpr", "read", "rtsp://admin:S3cret-Pass@127.0.0.1:9/lane", "--threads", "1"]) == 1
    captured = capsys.readouterr()
    assert "rtsp://***@127.0.0.1:9/lane: cannot open it" in captured.err
    assert "S3cret" not in captured.err + captured.out


def test_device_paths_and_urls_are_live_and_files_are_not():
    assert is_live(0) and is_live("/dev/video0") and is_live("rtsp://cam/lane")
    assert not is_live("/srv/lane/pass.mp4") and FrameSource("/dev/video9").is_live
