"""The committed ONNX models, run by onnxruntime on frames the tests render (real inference, can fail)."""

import json

import cv2
import numpy as np
import pytest

from edge.cli import main as cli_main
from edge.vision import bundle, ocr, plates, synth
from edge.vision.consensus import consensus
from edge.vision.detector import Detection, iou
from edge.vision.reader import REFINE_BELOW_PX, TIGHTEN_BELOW_PX, PlateReader
from edge.vision.sweep import place

# Texts avoid the O/0 and I/1 look-alikes, which Hershey fonts draw almost alike (the gateway compares
# plates with `plates.fold_lookalikes` for that reason).
CASES = [("PK 587-AT", "eu", 11), ("KR 4829 B", "eu", 12), ("ABC-2345", "br", 13), ("7XYZ582", "us", 14)]


@pytest.fixture(scope="module")
def reader() -> PlateReader:
    return PlateReader(threads=2)


def test_committed_models_follow_the_public_contracts(reader):
    det_input = reader.detector.session.get_inputs()[0]
    assert det_input.type == "tensor(float)" and det_input.shape[:2] == [1, 3]
    assert reader.detector.fixed_size is None  # free height and width: the reader sizes each frame
    assert reader.detector.input_sizes(1920, 1080) == [(960, 544), (384, 224)]
    config = ocr.load_config(bundle.OCR_CONFIG_PATH)
    ocr_input = reader.ocr.session.get_inputs()[0]
    assert ocr_input.type == "tensor(uint8)" and ocr_input.shape[1:] == [
        config.img_height,
        config.img_width,
        1,
    ]
    out = reader.ocr.session.run(
        None, {ocr_input.name: np.zeros((2, config.img_height, config.img_width, 1), np.uint8)}
    )[0]
    assert out.reshape(2, config.max_plate_slots, len(config.alphabet)).sum(-1) == pytest.approx(
        1.0, abs=1e-3
    )
    rows = reader.detector.session.run(None, {det_input.name: np.zeros((1, 3, 384, 384), np.float32)})[0]
    assert rows.shape[-1] == 7


def test_committed_weights_are_small():
    total = sum(p.stat().st_size for p in bundle.WEIGHTS_DIR.glob("*.onnx"))
    assert total < 15e6


@pytest.mark.parametrize(("text", "style", "seed"), CASES)
def test_reads_a_synthetic_frame(reader, text, style, seed):
    frame, (x1, y1, x2, y2) = synth.render_frame(text, style, np.random.default_rng(seed))
    reads = reader.read(frame)
    assert reads, "no plate detected"
    best = reads[0]
    assert best.text == plates.normalise(text)
    bx1, by1, bx2, by2 = best.box
    assert abs(bx1 - x1) < 0.2 * (x2 - x1) and abs(by2 - y2) < 0.6 * (y2 - y1)


def test_consensus_over_a_pass_reads_the_plate(reader):
    frames = synth.render_pass("WB 953-KT", 5, "eu", seed=21)
    reads = [r[0] for r in (reader.read(f) for f in frames) if r]
    result = consensus(reads, min_votes=3)
    assert result is not None and result.text == "WB953KT"


def test_no_plate_in_an_empty_scene(reader):
    rng = np.random.default_rng(5)
    scene = synth.degrade(synth._scene(rng, 1280, 720), rng, 0.3)
    assert all(r.confidence < 0.9 or r.detector_score < 0.5 for r in reader.read(scene))


def _lane_frame(plate_width: int, seed: int) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """A rendered plate placed `plate_width` px wide in a 1920x1080 frame (as the sweep places it)."""
    rng = np.random.default_rng(seed)
    plate = synth.render_plate("PK587AT", "eu", rng)
    background = synth._scene(rng, 640, 360)
    return place(plate, (0, 0, plate.shape[1], plate.shape[0]), plate_width, (1920, 1080), background, rng)


def _around(truth: tuple[float, float, float, float], width: float, height: float) -> Detection:
    cx, cy = (truth[0] + truth[2]) / 2, (truth[1] + truth[3]) / 2
    return Detection(cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2, 0.6)


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_refine_tightens_a_loose_box_and_pads_it_within_itself(reader, seed):
    """A 100 px plate's union box of about 140 x 50 px (IoU under 0.4: counted as a miss) becomes the refined
    box, a little wider than the plate and never wider than itself, so no edge character is cut off."""
    frame, truth = _lane_frame(100, seed)
    loose = _around(truth, 140, 55)
    assert REFINE_BELOW_PX <= 140 < TIGHTEN_BELOW_PX
    assert iou(truth, (loose.x1, loose.y1, loose.x2, loose.y2)) < 0.4
    got = reader.detector.refine(frame, loose)
    assert loose.x1 <= got.x1 and got.x2 <= loose.x2
    assert 0.97 * (truth[2] - truth[0]) < got.x2 - got.x1 < 0.95 * (loose.x2 - loose.x1)
    assert got.y2 - got.y1 < 40 and iou(truth, (got.x1, got.y1, got.x2, got.y2)) >= 0.4


def test_refine_tightens_a_small_box_on_both_axes_and_leaves_a_wide_one(reader):
    frame, truth = _lane_frame(70, 6)
    small = _around(truth, 100, 40)
    got = reader.detector.refine(frame, small)
    assert iou(truth, (got.x1, got.y1, got.x2, got.y2)) > iou(truth, (small.x1, small.y1, small.x2, small.y2))
    assert got.x2 - got.x1 < 90
    wide = _around(truth, TIGHTEN_BELOW_PX, 60)
    assert reader.detector.refine(frame, wide) == wide


def test_fp32_models_read_too():
    """The default reader runs the int8 files; the fp32 files they were quantised from read as well."""
    reader = PlateReader(bundle.DETECTOR_PATH, bundle.OCR_PATH, bundle.OCR_CONFIG_PATH, threads=2)
    frame, _ = synth.render_frame("GT 268-LM", "eu", np.random.default_rng(31))
    reads = reader.read(frame)
    assert reads and reads[0].text == "GT268LM"


def test_cli_eval_prints_one_json_line(tmp_path, capsys):
    for i, text in enumerate(["ZG 736-AB", "ST 542-KK"]):
        frame, (x1, y1, x2, y2) = synth.render_frame(text, "eu", np.random.default_rng(40 + i))
        cv2.imwrite(str(tmp_path / f"f{i}.png"), frame)
        (tmp_path / f"f{i}.txt").write_text(
            f"f{i}.png\t{int(x1)}\t{int(y1)}\t{int(x2 - x1)}\t{int(y2 - y1)}\t{plates.normalise(text)}\n"
        )
    assert cli_main(["lpr", "eval", str(tmp_path), "--threads", "1"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["n"] == 2 and figures["exact"] == 2 and figures["median_ms"] > 0


def test_cli_read_reports_unreadable_image(tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    assert cli_main(["lpr", "read", str(bad)]) == 1
    assert "cannot read image" in capsys.readouterr().err


def test_region_layouts_keep_a_fitting_plate_and_unknown_regions_are_refused(tmp_path):
    reader = PlateReader(threads=2, region="sk")
    frame, _ = synth.render_frame("PK 587-AT", "eu", np.random.default_rng(11))
    assert reader.read(frame)[0].text == "PK587AT"
    with pytest.raises(SystemExit, match="unknown plate region 'xx'"):
        cli_main(["lpr", "read", str(tmp_path / "frame.png"), "--region", "xx"])
