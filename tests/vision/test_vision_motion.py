"""Motion gating (edge.vision.motion) on rendered frames: a static noisy scene stays still, an
approaching car moves, only motion inside the lane's region counts."""

from __future__ import annotations

import numpy as np

from edge.vision import synth
from edge.vision.motion import MotionGate, changed_fraction, thumbnail
from edge.vision.roi import Roi

SIZE = (640, 360)


def _noise(image: np.ndarray, seed: int) -> np.ndarray:
    """The same scene as a camera sees it again: the sensor noise differs."""
    noise = np.random.default_rng(seed).normal(0, 4, image.shape)
    return (image.astype(np.float32) + noise).clip(0, 255).astype(np.uint8)


def test_a_static_scene_with_sensor_noise_does_not_move():
    frames = synth.render_approach("AB 123-CD", 20, seed=3, size=SIZE)
    still = frames[-1]
    gate = MotionGate()
    assert not any(gate.moved(_noise(still, seed)) for seed in range(20))


def test_an_approaching_car_moves():
    frames = synth.render_approach("AB 123-CD", 20, seed=3, size=SIZE)
    gate = MotionGate()
    moved = [gate.moved(f) for f in frames]
    assert not moved[0] and sum(moved) >= 15  # the first frame is the reference
    assert gate.frames == 20 and gate.moving == sum(moved)


def test_motion_outside_the_region_is_ignored():
    base = synth.render_approach("AB 123-CD", 2, seed=3, size=SIZE)[0]
    changed = base.copy()
    changed[:60, :] = 255 - changed[:60, :]  # something moves at the top of the picture
    roi = Roi.parse([[0.0, 0.4], [1.0, 0.4], [1.0, 1.0], [0.0, 1.0]])
    lane = MotionGate(roi)
    lane.moved(base)
    assert not lane.moved(changed)
    whole = MotionGate()
    whole.moved(base)
    assert whole.moved(changed)


def test_after_a_reset_the_next_frame_is_the_reference():
    first, second = synth.render_approach("AB 123-CD", 2, seed=3, size=SIZE)
    gate = MotionGate()
    gate.moved(first)
    gate.reset()
    assert not gate.moved(second)  # compared with nothing: the scene the lane comes back to
    assert gate.moved(first)


def test_a_new_resolution_counts_as_motion():
    assert changed_fraction(np.zeros((10, 10), np.uint8), np.zeros((12, 10), np.uint8), 10) == 1.0
    small = thumbnail(np.zeros((360, 640, 3), np.uint8), None, 160)
    assert small.shape == (90, 160)
