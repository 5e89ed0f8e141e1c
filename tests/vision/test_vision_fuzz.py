"""Bad input is named or dropped, never a crash: fuzz the parsers of labels, configs and model outputs."""

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edge.vision import detector, evaluate, ocr


@given(st.text(max_size=80))
def test_label_lines_parse_or_raise_value_error(line):
    try:
        sample = evaluate.parse_openalpr_line(line, Path("."))
    except ValueError as error:
        assert "label" in str(error)
    else:
        assert len(sample.box) == 4


scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 200), st.text(max_size=12), st.floats())


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "max_plate_slots",
                "alphabet",
                "pad_char",
                "img_height",
                "img_width",
                "keep_aspect_ratio",
                "image_color_mode",
                "other",
            ]
        ),
        scalars,
    )
)
def test_ocr_configs_validate_or_raise_value_error(data):
    try:
        config = ocr.config_from_dict(data)
    except ValueError as error:
        assert "OCR config" in str(error)
    else:
        assert config.pad_char in config.alphabet and config.max_plate_slots > 0


@settings(max_examples=60)
@given(
    hnp.arrays(
        np.float32,
        st.tuples(st.integers(0, 6), st.just(7)),
        elements=st.floats(width=32, allow_nan=True, allow_infinity=True),
    )
)
def test_detector_rows_never_crash_and_stay_in_frame(rows):
    geometry = detector.Letterbox(0.5, 0.0, 20.0)
    for det in detector.parse_output(rows, geometry, 640, 360, 0.3):
        assert 0 <= det.x1 < det.x2 <= 640 and 0 <= det.y1 < det.y2 <= 360 and det.score >= 0.3


@settings(max_examples=60)
@given(hnp.arrays(np.float32, (2, 4 * 4), elements=st.floats(0, 1, width=32)))
def test_ocr_decode_of_any_probabilities(probs):
    config = ocr.OcrConfig(4, "AB1_", "_", 16, 32)
    for text, confidences in ocr.decode(probs, config):
        assert len(text) == len(confidences) <= 4 and "_" not in text
