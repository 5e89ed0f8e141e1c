"""The lane's region of interest (edge.vision.roi): validation, fractions vs pixels, bounds, contains."""

import math
import subprocess
import sys

import cv2
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from edge.vision.roi import MAX_POINTS, Roi

WHERE = "lanes[0].camera.roi"


# --- validation: every refusal names where, the bad value and what is allowed ---------------------------


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("0,0;1,1", "has 2 point(s)"),
        ([], "has 0 point(s)"),
        (";".join(f"{i},{i % 2}" for i in range(MAX_POINTS + 1)), f"has {MAX_POINTS + 1} point(s)"),
        ("0,0;1,0;x,1", "'x' in '0,0;1,0;x,1' is not a number"),
        ("0,0;1,0;1", "'1' in '0,0;1,0;1' is not an x, y pair"),
        ("0,0;1,0;1,1,1", "is not an x, y pair"),
        ("0,0;1,0;-0.5,1", "'-0.5' in '0,0;1,0;-0.5,1' is not a number in [0, 100000]"),
        ("0,0;1,0;nan,1", "'nan' in '0,0;1,0;nan,1' is not a number in [0, 100000]"),
        ("0,0;inf,0;1,1", "is not a number in [0, 100000]"),
        ([[0, 0], [100001, 0], [0, 5]], "100001 in"),
        ([[0, 0], [1, 0], [True, 1]], "True in [[0, 0], [1, 0], [True, 1]] is not a number"),
        ([["0", "0"], ["1", "0"], ["1", "1"]], "'0' in"),
        ([[0, 0], [1, 0], None], "None in [[0, 0], [1, 0], None] is not an x, y pair"),
        (5, "5 is of type int"),
        ({"x": 1}, "is of type dict"),
        ("0,0;1920,0;0.5,1080", "mixes fractions of the frame (values between 0 and 1) with pixels"),
        ("0,0;1,1;1,0;0,1", "has edges that cross or overlap"),  # a bow tie
        ("0,0;40,0;40,40;20,0;0,40", "has edges that cross or overlap"),  # a vertex touches an edge
        ("0,0;1,0;0.5,0;0.5,1", "has edges that cross or overlap"),  # an edge folds back on its neighbour
        ("0,0;0.5,0.5;1,1", "has edges that cross or overlap"),  # all on one line
        ("0,0;1,0;1,1;1,0", "repeats a point"),
    ],
)
def test_bad_values_are_refused_with_where_value_and_what_is_allowed(value, problem):
    with pytest.raises(ValueError) as raised:
        Roi.parse(value, WHERE)
    message = str(raised.value)
    assert message.startswith(f"{WHERE}: ")
    assert problem in message
    assert "expected 3 to 64 [x, y] points" in message and "e.g. " in message


def test_long_bad_values_are_shortened_in_the_message():
    value = "0,0;1,0;" + "9" * 10_000
    with pytest.raises(ValueError, match=r"is not an x, y pair") as raised:
        Roi.parse(value)
    assert str(raised.value).startswith("roi: ") and len(str(raised.value)) < 600


def test_string_and_list_forms_parse_to_the_same_roi():
    from_text = Roi.parse(" 0.1, 0.4 ; 0.9,0.4; 0.9,1;0.1,1; ")
    from_list = Roi.parse([[0.1, 0.4], [0.9, 0.4], (0.9, 1), [0.1, 1]])
    assert from_text == from_list
    assert from_text.points == ((0.1, 0.4), (0.9, 0.4), (0.9, 1.0), (0.1, 1.0))
    assert str(from_text) == "0.1,0.4;0.9,0.4;0.9,1;0.1,1" and Roi.parse(str(from_text)) == from_text


# --- fractions vs pixels ---------------------------------------------------------------------------------


def test_fractions_scale_with_the_frame_and_pixels_do_not():
    fractions = Roi.parse("0,0.5;1,0.5;1,1;0,1")
    pixels = Roi.parse([[0, 540], [1920, 540], [1920, 1080], [0, 1080]])
    assert fractions.fractional and not pixels.fractional
    assert fractions.polygon(1920, 1080).tolist() == pixels.polygon(1920, 1080).tolist()
    assert fractions.polygon(1280, 720).tolist() == [[0, 360], [1280, 360], [1280, 720], [0, 720]]
    assert pixels.polygon(1280, 720).tolist() == pixels.polygon(1920, 1080).tolist()
    assert pixels.polygon(64, 48).dtype == np.float32 and pixels.polygon(64, 48).shape == (4, 2)


def test_zero_and_one_alone_are_fractions_and_may_sit_among_pixels():
    assert Roi.parse("0,0;1,0;0,1").fractional
    assert not Roi.parse("0,0;1,0;0,640").fractional  # 1 here is the pixel next to the corner


def test_check_frame_refuses_pixels_of_a_larger_camera():
    roi = Roi.parse("100,500;1900,500;1900,1070;100,1070")
    roi.check_frame(1920, 1080)
    with pytest.raises(ValueError, match=r"point\(s\) 1900,500;1900,1070;100,1070 outside the 1280x720"):
        roi.check_frame(1280, 720)
    Roi.parse("0,0;1,0;1,1").check_frame(32, 24)  # fractions fit any frame


# --- bounds ----------------------------------------------------------------------------------------------


def test_bounds_enclose_the_polygon_in_whole_pixels():
    assert Roi.parse("0.1,0.4;0.9,0.4;0.9,1;0.1,1").bounds(1920, 1080) == (192, 432, 1728, 1080)
    assert Roi.parse("10.2,20.7;30.5,20.7;20,40.1").bounds(100, 100) == (10, 20, 31, 41)


def test_bounds_are_clipped_to_a_smaller_frame_and_refused_when_nothing_is_left():
    roi = Roi.parse("1000,600;1900,600;1900,1000;1000,1000")
    assert roi.bounds(1280, 720) == (1000, 600, 1280, 720)
    with pytest.raises(ValueError, match=r"lies outside the 800x600 frame"):
        roi.bounds(800, 600)
    with pytest.raises(ValueError, match=r"lies outside the 1000x1000 frame"):
        roi.bounds(1000, 1000)  # touching the corner leaves no pixel


# --- contains --------------------------------------------------------------------------------------------


def test_contains_on_a_convex_polygon():
    roi = Roi.parse("0.25,0.5;0.75,0.5;0.75,1;0.25,1")
    assert roi.contains(640, 600, 1280, 720)
    assert roi.contains(320, 360, 1280, 720)  # a corner counts as inside
    assert roi.contains(640, 720, 1280, 720)  # so does an edge
    assert not roi.contains(640, 300, 1280, 720)
    assert not roi.contains(100, 600, 1280, 720)
    assert not roi.contains(1000, 700, 1280, 720)


def test_contains_on_a_concave_polygon():
    # A U: two lanes' posts with the notch between them excluded.
    u_shape = Roi.parse([[0, 0], [30, 0], [30, 30], [20, 30], [20, 10], [10, 10], [10, 30], [0, 30]])
    assert u_shape.contains(5, 25, 64, 48) and u_shape.contains(25, 25, 64, 48)
    assert u_shape.contains(15, 5, 64, 48)
    assert not u_shape.contains(15, 20, 64, 48)  # in the notch
    assert not u_shape.contains(15, 31, 64, 48)
    assert u_shape.contains(15, 10, 64, 48)  # the notch's floor is an edge


# --- properties ------------------------------------------------------------------------------------------


@st.composite
def star_polygons(draw, fractional: bool = True):
    """Simple polygons, convex or concave: vertices sorted by angle around a centre, each angular gap
    below pi, at random radii (the polygon is star-shaped from its centre, so no edges cross)."""
    count = draw(st.integers(3, 12))
    jitters = draw(st.lists(st.floats(-0.2, 0.2), min_size=count, max_size=count))
    radii = draw(st.lists(st.floats(0.2, 1.0), min_size=count, max_size=count))
    scale = 1.0 if fractional else draw(st.floats(50, 2000))
    cx, cy = draw(st.floats(0.35, 0.65)) * scale, draw(st.floats(0.35, 0.65)) * scale
    size = 0.3 * scale
    angles = [2 * math.pi * (i + jitter) / count for i, jitter in enumerate(jitters)]
    points = [
        [cx + size * r * math.cos(a), cy + size * r * math.sin(a)] for a, r in zip(angles, radii, strict=True)
    ]
    if not fractional:
        points = [[round(x), round(y)] for x, y in points]  # whole pixels, as an installer writes them
    return points


@settings(max_examples=150, deadline=None)
@given(star_polygons(), st.floats(0, 1), st.floats(0, 1), st.sampled_from([(1280, 720), (1920, 1080)]))
def test_contains_agrees_with_opencv_away_from_the_edges(points, fx, fy, frame):
    roi = Roi.parse(points)
    width, height = frame
    x, y = fx * width, fy * height
    distance = cv2.pointPolygonTest(roi.polygon(width, height).reshape(-1, 1, 2), (x, y), True)
    assume(abs(distance) > 1e-3)
    assert roi.contains(x, y, width, height) == (distance > 0)


@settings(max_examples=150, deadline=None)
@given(star_polygons(fractional=False))
def test_pixel_polygons_parse_and_contain_their_vertices(points):
    assume(len({tuple(p) for p in points}) == len(points))
    try:
        roi = Roi.parse(points)
    except ValueError as error:  # rounding to whole pixels may fold a thin polygon; refused, not crashed
        assert "cross or overlap" in str(error) or "no area" in str(error)
        return
    assert not roi.fractional or all(c in (0, 1) for p in points for c in p)
    assert all(roi.contains(x, y, 4000, 4000) for x, y in points)


@settings(max_examples=150, deadline=None)
@given(
    star_polygons(),
    st.integers(16, 2560),
    st.integers(16, 1440),
    st.floats(0, 1),
    st.floats(0, 1),
)
def test_bounds_hold_every_contained_point_and_stay_in_the_frame(points, width, height, fx, fy):
    roi = Roi.parse(points)
    x0, y0, x1, y1 = roi.bounds(width, height)
    assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
    polygon = roi.polygon(width, height)
    assert x0 <= polygon[:, 0].min() + 1e-3 and polygon[:, 0].max() - 1e-3 <= x1
    x, y = fx * width, fy * height
    if roi.contains(x, y, width, height):
        assert x0 <= x <= x1 and y0 <= y <= y1


@settings(max_examples=100, deadline=None)
@given(star_polygons(), st.integers(100, 4000), st.integers(100, 4000), st.floats(0, 1), st.floats(0, 1))
def test_a_fraction_roi_and_its_pixel_copy_agree(points, width, height, fx, fy):
    fractions = Roi.parse(points)
    in_pixels = Roi.parse(fractions.pixels(width, height))
    x, y = fx * width, fy * height
    distance = cv2.pointPolygonTest(fractions.polygon(width, height).reshape(-1, 1, 2), (x, y), True)
    assume(abs(distance) > 1e-2)
    assert fractions.contains(x, y, width, height) == in_pixels.contains(x, y, width, height)
    assert fractions.bounds(width, height) == in_pixels.bounds(width, height)


@settings(max_examples=150, deadline=None)
@given(star_polygons())
def test_the_text_form_reads_back_the_same_roi(points):
    roi = Roi.parse(points)
    assert Roi.parse(str(roi)) == roi


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5000) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values | st.text(alphabet="0123456789.,; -e", max_size=40))
def test_any_config_value_either_parses_or_is_refused_with_a_value_error(value):
    try:
        roi = Roi.parse(value, WHERE)
    except ValueError as error:
        assert str(error).startswith(f"{WHERE}: ")
        return
    assert 3 <= len(roi.points) <= MAX_POINTS


def test_parsing_and_geometry_load_no_numpy():
    """edge.config can validate a configured ROI and stay a pure module."""
    code = (
        "import sys\n"
        "from edge.vision.roi import Roi\n"
        "roi = Roi.parse('0,0.5;1,0.5;1,1;0,1')\n"
        "assert roi.contains(10, 700, 1280, 720) and roi.bounds(1280, 720) == (0, 360, 1280, 720)\n"
        "print(','.join(m for m in ('numpy', 'cv2', 'onnxruntime') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
