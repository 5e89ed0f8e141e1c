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
