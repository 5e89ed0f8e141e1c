"""Training-data helpers that need no torch and no shared data (pure numpy/OpenCV)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
