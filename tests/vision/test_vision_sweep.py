"""The lane-geometry sweep: placement maths (pure), placed frames, summaries and `parkgate lpr sweep`."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.vision import synth
from edge.vision.detector import iou
from edge.vision.sweep import (
    Outcome,
    detected,
    per_width,
    place,
    placement,
    seed_of,
    summarise,
    turn_quad,
)


def test_unturned_plate_lands_at_its_width_and_centre() -> None:
    where = placement((800, 600), (100, 400, 200, 50), 80, (1920, 1080), 0.0, (960, 540))
    x1, y1, x2, y2 = where.plate_box
    assert x2 - x1 == pytest.approx(80, abs=0.5)
    assert y2 - y1 == pytest.approx(20, abs=0.5)  # the plate keeps its aspect: 200x50 -> 80x20
    assert ((x1 + x2) / 2, (y1 + y2) / 2) == pytest.approx((960, 540), abs=0.5)


@pytest.mark.parametrize("degrees", [-15.0, -7.0, 7.0, 15.0])
def test_a_turned_plate_is_narrower_by_the_cosine_and_stays_centred(degrees: float) -> None:
    where = placement((400, 200), (0, 0, 400, 200), 100, (1280, 720), degrees, (640, 360))
    x1, y1, x2, y2 = where.plate_box
    assert x2 - x1 == pytest.approx(100 * np.cos(np.deg2rad(degrees)), abs=0.5)
    assert y2 - y1 <= 50 + 0.5
    assert (x1 + x2) / 2 == pytest.approx(640, abs=2.0)  # the plate centre is at 640; its box leans


def test_turn_quad_far_side_is_shorter() -> None:
    quad = turn_quad(200, 100, 15.0)
    left_height, right_height = quad[3, 1] - quad[0, 1], quad[2, 1] - quad[1, 1]
    assert left_height < right_height == pytest.approx(100)
    assert np.allclose(turn_quad(200, 100, 0.0)[:, 0], [-100, 100, 100, -100])


def test_placement_refuses_an_empty_box() -> None:
    with pytest.raises(ValueError, match="positive"):
        placement((100, 100), (10, 10, 0, 5), 60, (1280, 720), 0.0, (640, 360))


def test_placed_frame_has_the_asked_size_and_is_reproducible() -> None:
    rng_plate = np.random.default_rng(1)
    plate = synth.render_plate("AB123CD", "eu", rng_plate)
    background = synth._scene(np.random.default_rng(2), 640, 360)
    frames = []
    for _ in range(2):
        rng = np.random.default_rng(seed_of("p.png", 60, (1920, 1080)))
        frames.append(place(plate, (0, 0, plate.shape[1], plate.shape[0]), 60, (1920, 1080), background, rng))
    (frame, box), (again, box_again) = frames
    assert frame.shape == (1080, 1920, 3) and frame.dtype == np.uint8
    assert np.array_equal(frame, again) and box == box_again
    assert 50 <= box[2] - box[0] <= 60.5  # up to 15 degrees of turn


def test_seeds_differ_by_width_and_size() -> None:
    seeds = {seed_of("a.jpg", w, s) for w in (40, 60) for s in ((1280, 720), (1920, 1080))}
    assert len(seeds) == 4


def test_iou_and_detected() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == pytest.approx(1.0)
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert detected([(20, 20, 30, 30), (1, 0, 10, 10)], (0, 0, 10, 10))
    assert not detected([(5, 0, 15, 10)], (0, 0, 10, 10))


def test_summaries_per_width() -> None:
    outcomes = [
        Outcome(60, True, "AB1", "AB1", 10.0),
        Outcome(60, True, "AB7", "AB1", 30.0),
        Outcome(80, False, "", "CD2", 20.0),
        Outcome(80, True, "RK026AJ", "RKO26AJ", 40.0),  # a label that writes O for 0: folded only
    ]
    assert summarise(outcomes) == {
        "n": 4, "detection_recall": 0.75, "exact": 1, "exact_rate": 0.25, "folded": 2,
        "folded_rate": 0.5, "median_ms": 25.0,
    }
    lines = per_width(outcomes, [60, 80, 100])
    assert [line["width"] for line in lines] == [60, 80, 100]
    assert lines[0]["exact_rate"] == 0.5 and lines[1]["detection_recall"] == 0.5 and lines[2]["n"] == 0


def test_lpr_sweep_prints_a_line_per_width_and_one_overall(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    rows = []
    for index, text in enumerate(("KA123BC", "ZV456DE")):
        cv2.imwrite(str(tmp_path / f"p{index}.png"), synth.render_plate(text, "eu", rng))
        rows.append([f"p{index}.png", "sk", text])
    with open(tmp_path / "groundtruth.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    backgrounds = tmp_path / "bg"
    backgrounds.mkdir()
    cv2.imwrite(str(backgrounds / "b.png"), synth._scene(rng, 640, 360))
    done = subprocess.run(
        [sys.executable, "-m", "edge.cli", "lpr", "sweep", str(tmp_path), "--widths", "60,140",
         "--sizes", "1280x720", "--backgrounds", str(backgrounds), "--threads", "1"],
        capture_output=True, text=True, timeout=120, check=True,
    )
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["width"] for line in lines] == [60, 140, "all"]
    assert [line["n"] for line in lines] == [2, 2, 4]
    assert set(lines[-1]) >= {"detection_recall", "exact_rate", "median_ms", "peak_rss_mb"}
    assert "sweep: 4/4 frames" in done.stderr


def test_lpr_sweep_refuses_bad_widths(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "edge.cli", "lpr", "sweep", str(tmp_path), "--widths", "60,abc"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode != 0 and "--widths must be integers" in done.stderr
