"""Huge and very tall images (s13 review, finding 3): the size is read from the image header and an image
over the pixel limit is refused before it is decoded; the detector input is capped in height too; and
`lpr read` reports a source that fails and goes on with the next. Images are generated into tmp_path; an
image too big to write cheaply is a small real PNG whose header says 20000x20000."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.cli import main as cli_main
from edge.vision import bundle, detector, synth
from edge.vision.imageheader import image_size
from edge.vision.reader import PlateDetector
from edge.vision.sources import MAX_IMAGE_PIXELS, SourceError, load_image, read_frames

FAILING_DETECTOR = Path(__file__).resolve().parent / "fixtures" / "failing_detector.onnx"


def claims(path: Path, width: int, height: int) -> Path:
    """A real 8x8 PNG at `path` whose header (IHDR, CRC fixed) claims `width` x `height`: what a huge
    image's header says, without writing gigabytes."""
    ok, data = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
    assert ok
    png = bytearray(data.tobytes())
    png[16:24] = struct.pack(">II", width, height)
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))
    path.write_bytes(bytes(png))
    return path


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".bmp", ".webp", ".tif", ".ppm", ".pgm", ".pbm"])
def test_the_size_is_read_from_the_header_of_each_format(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"frame{suffix}"
    image = np.random.default_rng(1).integers(0, 255, (37, 53, 3), np.uint8)
    assert cv2.imwrite(str(path), image[:, :, 0] if suffix in (".pgm", ".pbm") else image)
    assert image_size(path) == (53, 37)


def test_a_jpeg_size_is_found_after_a_large_exif_segment(tmp_path: Path) -> None:
    ok, data = cv2.imencode(".jpg", np.zeros((30, 70, 3), np.uint8))
    assert ok
    app1 = b"\xff\xe1" + struct.pack(">H", 60_002) + b"Exif\x00\x00" + bytes(59_994)
    path = tmp_path / "exif.jpg"
    path.write_bytes(data.tobytes()[:2] + app1 + data.tobytes()[2:])
    assert image_size(path) == (70, 30)
    assert load_image(path).shape == (30, 70, 3)


@pytest.mark.parametrize("content", [b"", b"not an image", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xd9"])
def test_no_size_from_a_damaged_or_unknown_header(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    assert image_size(path) is None
    with pytest.raises(SourceError, match=r"bad.png: cannot read image"):
        load_image(path)


def test_an_image_over_the_limit_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    """20000x20000 (400 MP, 1.2 GB decoded: `lpr read` peaked at 2.45 GB) is refused from its header."""
    path = claims(tmp_path / "huge.png", 20000, 20000)
    with pytest.raises(SourceError) as refused:
        list(read_frames(str(path)))
    assert str(refused.value) == (f"{path}: 20000x20000 = 400,000,000 pixels is more than the "
                                  f"{MAX_IMAGE_PIXELS:,} allowed; scale it down first")


def test_the_limit_is_a_parameter_and_applies_to_real_images(tmp_path: Path) -> None:
    path = tmp_path / "frame.jpg"
    assert cv2.imwrite(str(path), np.zeros((300, 400, 3), np.uint8))
    with pytest.raises(SourceError, match=r"frame.jpg: 400x300 = 120,000 pixels is more than the 100,000 "):
        list(read_frames(str(path), max_pixels=100_000))
    (frame,) = read_frames(str(path), max_pixels=120_000)
    assert frame.image.shape == (300, 400, 3)


def test_the_detector_input_is_capped_in_height_too() -> None:
    """A 900x150000 strip became a 928x150016 detector input (std::bad_alloc in ONNX Runtime)."""
    assert detector.free_size(900, 150_000, 960) == (32, 1920)
    assert detector.free_size(1920, 1080, 960) == (960, 544)  # lane frames as before
    assert detector.free_size(1080, 1920, 960) == (960, 1728)  # portrait frames up to 1:2 as before
    assert detector.free_size(900, 5000, 960, max_height=1000) == (192, 1024)
    sizes = PlateDetector(bundle.DEFAULT_DETECTOR_PATH, threads=1).input_sizes(900, 150_000)
    assert sizes and all(width <= 960 and height <= 1920 for width, height in sizes)


def lane_frame(path: Path) -> Path:
    frame, _ = synth.render_frame("PK 587-AT", "eu", np.random.default_rng(11))
    assert cv2.imwrite(str(path), frame)
    return path


def test_lpr_read_reports_a_too_big_image_and_reads_the_next(tmp_path: Path, capsys) -> None:
    huge, frame = claims(tmp_path / "huge.png", 900, 150_000), lane_frame(tmp_path / "frame.png")
    assert cli_main(["lpr", "read", str(huge), str(frame), "--json", "--threads", "1"]) == 1
    captured = capsys.readouterr()
    assert f"{huge}: 900x150000 = 135,000,000 pixels is more than the" in captured.err
    (record,) = [json.loads(line) for line in captured.out.splitlines()]
    assert record["source"] == str(frame) and record["reads"][0]["text"] == "PK587AT"


def test_lpr_read_reports_a_detector_failure_per_source_and_goes_on(tmp_path: Path, capsys) -> None:
    """ONNX Runtime failing on an image (as it did, out of memory, on a 928x150016 input) ended `lpr read`
    with a traceback, and the sources after it were never read: now each is reported, exit status 1."""
    first, second = lane_frame(tmp_path / "first.png"), lane_frame(tmp_path / "second.png")
    argv = ["lpr", "read", str(first), str(second), "--detector", str(FAILING_DETECTOR), "--threads", "1"]
    assert cli_main(argv) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if ": cannot read it: " in line]
    assert [line.split(": cannot read it: ")[0] for line in errors] == [str(first), str(second)]
    assert all("Reshape" in line for line in errors)


def test_lpr_eval_names_a_too_big_image(tmp_path: Path) -> None:
    claims(tmp_path / "huge.png", 20000, 20000)
    (tmp_path / "huge.txt").write_text("huge.png\t10\t10\t100\t25\tAB123CD\n")
    with pytest.raises(SystemExit, match=r"parkgate lpr eval: .*huge.png: 20000x20000 = 400,000,000 pixels"):
        cli_main(["lpr", "eval", str(tmp_path), "--threads", "1"])
