"""Training-data helpers that need no torch and no shared data (pure numpy/OpenCV)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.vision import synth
from models import data


@settings(max_examples=200, deadline=None)
@given(
    st.integers(200, 2000),
    st.floats(0.5, 1.0),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
    st.floats(0.02, 0.8),
    st.integers(0, 2**32 - 1),
)
def test_zoomed_view_keeps_the_whole_plate_at_its_place(width, aspect, fx, fy, plate_share, seed):
    height = int(width * aspect)
    plate_w = max(4, int(width * plate_share))
    plate_h = max(2, min(height - 2, plate_w // 4))
    x, y = int(fx * (width - plate_w)), int(fy * (height - plate_h))
    image = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    view, (x1, y1, x2, y2) = data._zoomed_view(image, (x, y, plate_w, plate_h), np.random.default_rng(seed))
    assert min(x1, y1) >= 0 and x2 <= view.shape[1] and y2 <= view.shape[0]
    assert (x2 - x1, y2 - y1) == (plate_w, plate_h)
    assert (view[y1:y2, x1:x2] == image[y : y + plate_h, x : x + plate_w]).all()


def test_letterboxed_scene_maps_boxes_into_the_square_input():
    frame = np.zeros((300, 600, 3), np.uint8)
    frame[100:130, 200:320] = 255
    boxed, [(x1, y1, x2, y2)] = data._letterboxed(frame, [(200, 100, 320, 130)], 384)
    assert boxed.shape == (384, 384, 3)
    assert (boxed[int(y1) + 2 : int(y2) - 2, int(x1) + 2 : int(x2) - 2] == 255).all()
    assert boxed[int(y1) - 3, int(x1) - 3].max() < 255


@pytest.mark.parametrize(
    ("label", "corrected"),
    [
        ("RKO99AN", "RK099AN"),  # Slovak: O in a digit position
        ("RK3OOAG", "RK300AG"),
        ("RK550AO", "RK550AO"),  # Slovak letter position: the letter O stays
        ("4BO4979", "4B04979"),  # Czech plates never use O
        ("WA56660", "WA56660"),  # Polish: no Slovak plate with misread letters
        ("1B70440", "1B70440"),
        ("SG47471", "SG47471"),
        ("BIMMIAN", "BIMMIAN"),
    ],
)
def test_eu_labels_are_corrected_only_for_o_in_digit_positions(label, corrected):
    assert data.corrected_eu_label(label) == corrected


def test_lane_cuts_are_the_readers_cuts_of_a_placed_plate_with_its_label():
    """The OCR's lane stage learns from what the reader will feed it: the shipped detector's box around a
    plate placed into a lane frame, cut with each of the reader's margins; the label is the placed plate's."""
    from edge.vision import reader as reader_mod
    from edge.vision import synth

    rng = np.random.default_rng(3)
    plate = synth.render_plate("ABC1234", "us", rng)
    sources = [("rendered", [(plate, (0, 0, plate.shape[1], plate.shape[0]), "ABC1234")])]
    reader = reader_mod.PlateReader(threads=1)
    margins = ((0.0, 0.0), (0.05, 0.1))
    cuts = data.lane_cuts(np.random.default_rng(5), 6, sources, reader, margins)
    assert len(cuts) == 6
    assert {label for _, label in cuts} == {"ABC1234"}
    assert all(cut.shape == (data.OCR_SIZE[1], data.OCR_SIZE[0]) and cut.dtype == np.uint8 for cut, _ in cuts)
    # Each placement gives one cut per margin, the wider margin showing more of the frame around the plate.
    tight, wide = cuts[0][0], cuts[1][0]
    assert not np.array_equal(tight, wide)


def test_rendered_lane_plates_are_whole_images_with_their_normalised_label():
    """The pooled stage can place rendered plates among the real ones: each is a whole plate image, its box
    the whole image, its label in the OCR's alphabet."""
    name, rows = data.synthetic_lane_source(np.random.default_rng(4), 40, synth.hershey_text_mask)
    assert name == "synthetic" and len(rows) == 40
    for image, box, label in rows:
        assert image.ndim == 3 and image.dtype == np.uint8
        assert box == (0, 0, image.shape[1], image.shape[0])
        assert label and label == label.upper() and label.isalnum()


def test_pooled_targets_hold_each_label_then_blanks():
    """The pooled stage keeps its pools as tensors: a label's characters, then the blank up to the slots."""
    torch = pytest.importorskip("torch")
    from models import train

    crop = np.zeros((data.OCR_SIZE[1], data.OCR_SIZE[0]), np.uint8)
    images, targets, lengths = train._pool_tensors([(crop, "AB12"), (crop + 7, "9")], "cpu")
    blank = train.ALPHABET.index(train.PAD)
    assert images.shape == (2, data.OCR_SIZE[1], data.OCR_SIZE[0]) and int(images[1, 0, 0]) == 7
    assert lengths.tolist() == [4, 1]
    assert "".join(train.ALPHABET[i] for i in targets[0, :4].tolist()) == "AB12"
    assert targets[0, 4:].eq(blank).all() and targets[1, 1:].eq(blank).all()
    assert targets.dtype == torch.long


def test_pooled_training_stops_at_its_deadline(capsys):
    """A GPU lease ends at a fixed time: past `--deadline` the stage stops, says so, and still returns the
    network so that it can be exported."""
    pytest.importorskip("torch")
    from models import train

    rng = np.random.default_rng(2)
    crop = lambda: rng.integers(0, 255, (data.OCR_SIZE[1], data.OCR_SIZE[0]), dtype=np.uint8)  # noqa: E731
    pools = {name: [(crop(), "AB12"), (crop(), "XY9")] for name, _ in train.POOLED_SHARES}
    net = train.fit_ocr_pooled(1, 50, pools, None, 1e-3, 8, "cpu", False, deadline_s=0.0)
    assert not net.training
    assert "stopped at step 1 of 50" in capsys.readouterr().out


def test_state_from_onnx_gives_back_the_exported_ocr():
    """The lane stage starts from a shipped OCR file: its weights come back into the torch network (batch
    norms folded, LSTM gates reordered) and the network reads exactly as the file does."""
    torch = pytest.importorskip("torch")
    import onnxruntime as ort

    from edge.vision import bundle
    from models import nets, train

    state = train.state_from_onnx(bundle.OCR_PATH)
    export = nets.CtcSlotsExport(train.ocr_net(state).eval(), train.SLOTS, train.ALPHABET.index(train.PAD))
    batch = np.random.default_rng(0).integers(0, 255, (4, data.OCR_SIZE[1], data.OCR_SIZE[0], 1), np.uint8)
    session = ort.InferenceSession(str(bundle.OCR_PATH), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"input": batch})[0]
    with torch.no_grad():
        got = export.eval()(torch.from_numpy(batch)).numpy()
    assert np.abs(expected - got).max() < 1e-4


def test_a_soup_is_the_layer_by_layer_mean_and_of_one_file_that_file():
    """`--ocr-soup` averages float weights (step counts kept), and the soup of one OCR with itself has that
    OCR's weights (the shipped model is such a soup: models/cards/plate_ocr.md)."""
    torch = pytest.importorskip("torch")
    from models import train

    a = train.ocr_net().state_dict()
    b = {key: value + 1 if value.is_floating_point() else value + 5 for key, value in a.items()}
    mean = train.average_states([a, b])
    assert all(torch.allclose(mean[k], a[k] + 0.5) for k in a if a[k].is_floating_point())
    assert all(torch.equal(mean[k], a[k]) for k in a if not a[k].is_floating_point())
    from edge.vision import bundle

    state = train.state_from_onnx(bundle.OCR_PATH)
    assert all(torch.equal(v, state[k]) for k, v in train.average_states([state, state]).items())


def test_lane_rounds_continue_where_a_run_stopped():
    """A run from round N on gives round N the seed and data a full run would (the committed OCR was
    made round by round), and the synthetic US plates carry their marks from round 4 on."""
    from models import train

    full = train.lane_rounds(7, 1, 5)
    assert full == [(7, False), (8, False), (9, False), (10, True), (11, True)]
    assert train.lane_rounds(7, 4, 5) == full[3:]
    assert train.lane_rounds(7, 3, 2) == []
    with pytest.raises(ValueError, match="--from-round counts from 1, got 0"):
        train.lane_rounds(7, 0, 3)


def test_synthetic_us_looks_change_only_us_plates(monkeypatch):
    """With US looks the US samples are drawn differently; every other sample is the same as without.
    (Text in OpenCV's built-in font: the TrueType one needs Pillow, a training extra.)"""
    monkeypatch.setattr(data, "any_text_mask", synth.hershey_text_mask)
    plain = [data.synth_ocr_sample(np.random.default_rng(s)) for s in range(12)]
    looks = [data.synth_ocr_sample(np.random.default_rng(s), us_looks=True) for s in range(12)]
    us = [synth.STYLES[np.random.default_rng(s).choice(3, p=[0.5, 0.3, 0.2])] == "us" for s in range(12)]
    assert any(us) and not all(us)
    for (image_a, text_a), (image_b, text_b), is_us in zip(plain, looks, us, strict=True):
        assert text_a == text_b
        assert np.array_equal(image_a, image_b) != is_us


def test_the_shipped_int8_models_are_the_static_quantisation_of_the_fp32_ones(tmp_path):
    """`python -m models.train --quantise` turns the committed fp32 files into the committed int8 files
    (calibrated on rendered frames only): same detections and the same OCR output on a rendered frame."""
    pytest.importorskip("onnx")  # the optional train extra
    import shutil

    from edge.vision import bundle
    from edge.vision.reader import make_session
    from models import train

    for name in ("plate_detector.onnx", "plate_ocr.onnx"):
        shutil.copy(bundle.WEIGHTS_DIR / name, tmp_path / name)
    train.quantise_both(tmp_path)
    frames = train.calibration_frames(seed=99, frames=1)
    checks = [("plate_detector", train.detector_calibration(frames)[0]),
              ("plate_ocr", train.ocr_calibration(frames)[0])]
    for stem, feed in checks:
        shipped = make_session(bundle.WEIGHTS_DIR / f"{stem}.int8.onnx", 1).run(None, feed)[0]
        fresh = make_session(tmp_path / f"{stem}.int8.onnx", 1).run(None, feed)[0]
        assert np.allclose(shipped, fresh, atol=1e-4), stem
