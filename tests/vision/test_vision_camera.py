import time

import cv2
import numpy as np
import pytest

from edge.vision.camera import FrameSource, open_capture, parse_source


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
    assert cpu < 0.5, f"capture thread used {cpu:.2f} s of CPU in 3 s"
    assert source.read_failures >= 1
    if frames == ["empty.jpg"]:
        assert source.last_frame_at is None
        assert camera_health(source, 2, time.monotonic())["state"] == "stalled"
