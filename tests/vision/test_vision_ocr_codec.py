import numpy as np
import pytest

from edge.vision import ocr

CONFIG = ocr.OcrConfig(max_plate_slots=4, alphabet="AB1_", pad_char="_", img_height=16, img_width=32)


def one_hot(text: str, sharp: float = 0.9) -> np.ndarray:
    probs = np.full((len(text), 4), (1 - sharp) / 3, np.float32)
    for slot, char in enumerate(text):
        probs[slot, CONFIG.alphabet.index(char)] = sharp
    return probs


def test_decode_strips_pad_and_reports_char_confidence():
    [(text, confs)] = ocr.decode(one_hot("AB1_")[None], CONFIG)
    assert text == "AB1" and confs == pytest.approx([0.9, 0.9, 0.9])


def test_decode_accepts_flat_output_and_batches():
    flat = np.stack([one_hot("A___").ravel(), one_hot("1B__", 0.6).ravel()])
    decoded = ocr.decode(flat, CONFIG)
    assert [t for t, _ in decoded] == ["A", "1B"]
    assert ocr.plate_confidence(decoded[1][1]) == pytest.approx(0.6)


def test_decode_rejects_output_that_does_not_fit_slots():
    with pytest.raises(ValueError, match="4 slots x 4 alphabet"):
        ocr.decode(np.zeros((1, 15)), CONFIG)


def test_empty_read_has_zero_confidence():
    assert ocr.plate_confidence([]) == 0.0


def test_preprocess_grey_and_rgb_shapes():
    crops = [np.zeros((40, 100, 3), np.uint8), np.zeros((20, 20, 3), np.uint8)]
    batch = ocr.preprocess(crops, CONFIG)
    assert batch.shape == (2, 16, 32, 1) and batch.dtype == np.uint8
    rgb = ocr.OcrConfig(4, "AB1_", "_", 16, 32, keep_aspect_ratio=True, image_color_mode="rgb")
    wide = np.zeros((10, 100, 3), np.uint8)
    wide[..., 2] = 255
    out = ocr.preprocess([wide], rgb)
    assert out.shape == (1, 16, 32, 3)
    assert out[0, 0, 0, 0] == 255 and out[0, -1, 0, 0] == 0  # red first (RGB); padding below


def test_config_validation_names_bad_key():
    good = {"max_plate_slots": 9, "alphabet": "AB_", "pad_char": "_", "img_height": 70, "img_width": 140}
    assert ocr.config_from_dict(good).channels == 1
    with pytest.raises(ValueError, match="missing keys"):
        ocr.config_from_dict({"alphabet": "AB_"})
    with pytest.raises(ValueError, match="max_plate_slots must be a positive integer"):
        ocr.config_from_dict({**good, "max_plate_slots": "9"})
    with pytest.raises(ValueError, match="pad_char must be one character of the alphabet"):
        ocr.config_from_dict({**good, "pad_char": "*"})
    with pytest.raises(ValueError, match="image_color_mode must be one of"):
        ocr.config_from_dict({**good, "image_color_mode": "hsv"})
    with pytest.raises(ValueError, match="expected a mapping"):
        ocr.config_from_dict(["x"])


def test_decode_fits_reads_to_region_layouts():
    probs = one_hot("1B1_")  # the layout "AA9" wants a letter where the OCR saw '1'
    probs[0, CONFIG.alphabet.index("A")] = 0.08
    [(text, confs)] = ocr.decode(probs[None], CONFIG, layouts=("AA9",))
    assert text == "AB1"
    assert confs[0] == pytest.approx(0.08 / (0.08 + 0.1 / 3))  # renormalised among the letters


def test_decode_keeps_the_read_when_no_layout_fits_well():
    probs = one_hot("1B1_", sharp=0.9998)
    [(text, _)] = ocr.decode(probs[None], CONFIG, layouts=("AA9",))
    assert text == "1B1"


def test_decode_drops_a_stray_end_character_to_fit_a_layout():
    [(text, confs)] = ocr.decode(one_hot("AB1_")[None], CONFIG, layouts=("A9",))
    assert text == "B1" and len(confs) == 2
