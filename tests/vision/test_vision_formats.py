"""Public-format compatibility: models shaped like fast-plate-ocr and open-image-models' end-to-end YOLO,
with another alphabet, slot count, colour mode and input size, load and decode through their YAML/shape.
The fixtures are tiny real ONNX graphs (built by fixtures/build_fixtures.py), run by onnxruntime."""

from pathlib import Path

import numpy as np
import pytest

from edge.vision import ocr
from edge.vision.reader import PlateDetector, PlateOcr, PlateReader

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_fast_plate_ocr_shaped_model_with_other_alphabet_and_slots():
    config = ocr.load_config(FIXTURES / "fpo_rgb7.yaml")
    assert config.max_plate_slots == 7 and config.channels == 3 and config.keep_aspect_ratio
    model = PlateOcr(FIXTURES / "fpo_rgb7.onnx", config, threads=1)
    crops = [np.zeros((50, 200, 3), np.uint8), np.full((30, 60, 3), 90, np.uint8)]
    reads = model.read_crops(crops)
    assert [read.text for read in reads] == ["KA77", "KA77"]  # separators dropped by normalisation
    assert all(len(read.char_confidences) == 4 and min(read.char_confidences) > 0.9 for read in reads)


def test_end_to_end_yolo_shaped_detector_at_640_maps_boxes_to_frame():
    model = PlateDetector(FIXTURES / "yolo_e2e_640.onnx", threads=1, min_score=0.3)
    assert model.fixed_size == (640, 640)
    frame = np.zeros((720, 1280, 3), np.uint8)
    [det] = model.detect(frame)  # the low-score row is dropped
    # 1280x720 -> scale 0.5, pad_y 140: (100, 300, 260, 340) -> (200, 320, 520, 400)
    assert (det.x1, det.y1, det.x2, det.y2) == pytest.approx((200, 320, 520, 400))
    assert det.score == pytest.approx(0.9)


def test_reader_combines_public_format_models():
    reader = PlateReader(
        FIXTURES / "yolo_e2e_640.onnx", FIXTURES / "fpo_rgb7.onnx", FIXTURES / "fpo_rgb7.yaml", threads=1
    )
    [read] = reader.read(np.zeros((720, 1280, 3), np.uint8))
    assert read.text == "KA77" and read.box == pytest.approx((200, 320, 520, 400))


def test_missing_model_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="ONNX model not found"):
        PlateDetector(tmp_path / "nope.onnx")
