from itertools import pairwise

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


def test_render_approach_is_one_car_in_one_scene_coming_closer():
    frames = synth.render_approach("XY 99", 8, seed=5, size=(320, 240))
    again = synth.render_approach("XY 99", 8, seed=5, size=(320, 240))
    assert len(frames) == 8 and all(np.array_equal(a, b) for a, b in zip(frames, again, strict=True))
    assert np.array_equal(frames[0][:20], frames[-1][:20])  # the sky above the car is the same scene
    changed = [int((np.abs(a.astype(int) - b.astype(int)) > 20).sum()) for a, b in pairwise(frames)]
    assert changed[0] > changed[-1]  # it slows down as it comes


def test_render_approach_on_a_given_background():
    background = np.full((120, 160, 3), 90, np.uint8)
    frames = synth.render_approach("XY 99", 3, seed=5, size=(320, 240), background=background, strength=0)
    assert frames[0].shape == (240, 320, 3) and (frames[0][:10] == 90).all()


def test_us_looks_mark_the_plate_beside_its_number() -> None:
    def render(look: synth.UsLook | None = None) -> np.ndarray:
        rng = np.random.default_rng(2)
        return synth.us_plate("ABC1234", rng, synth.hershey_text_mask, look or synth.UsLook())

    plain = render()
    assert np.array_equal(plain, synth.render_plate("ABC1234", "us", np.random.default_rng(2)))
    looks = [synth.UsLook(light_on_dark=True), synth.UsLook(stacked="PC"), synth.UsLook(emblem=True),
             synth.UsLook(stickers=True)]
    for look in looks:
        marked = render(look)
        assert marked.shape == plain.shape and not np.array_equal(marked, plain), look
    assert np.median(render(looks[0])) < np.median(plain)  # a dark plate, light characters
    assert synth.random_us_look(np.random.default_rng(4)) == synth.random_us_look(np.random.default_rng(4))
