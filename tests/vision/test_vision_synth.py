import numpy as np
import pytest

from edge.vision import synth


def test_render_frame_is_reproducible_and_box_inside():
    frame_a, box_a = synth.render_frame("AB 123-CD", "eu", np.random.default_rng(3))
    frame_b, box_b = synth.render_frame("AB 123-CD", "eu", np.random.default_rng(3))
    assert frame_a.shape == (720, 1280, 3) and frame_a.dtype == np.uint8
    assert box_a == box_b and np.array_equal(frame_a, frame_b)
    x1, y1, x2, y2 = box_a
    assert 0 <= x1 < x2 <= 1280 and 0 <= y1 < y2 <= 720 and x2 - x1 > 100


@pytest.mark.parametrize("style", synth.STYLES)
def test_plate_styles_render(style):
    rng = np.random.default_rng(1)
    text = synth.random_text(rng, style)
    plate = synth.render_plate(text, style, rng)
    assert plate.ndim == 3 and plate.shape[1] > plate.shape[0]
    assert plate.std() > 20  # text and background differ


def test_unknown_style_is_named():
    with pytest.raises(ValueError, match="allowed: eu, us, br"):
        synth.render_plate("AB", "xx")


def test_render_pass_gives_growing_plate_frames():
    frames = synth.render_pass("XY 99", 3, seed=5, size=(320, 240))
    assert len(frames) == 3 and all(f.shape == (240, 320, 3) for f in frames)
