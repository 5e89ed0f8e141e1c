import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.vision import detector


def test_letterbox_centres_image_on_grey_padding():
    frame = np.full((720, 1280, 3), 200, np.uint8)
    boxed, geometry = detector.letterbox(frame, 384)
    assert boxed.shape == (384, 384, 3)
    assert geometry.scale == pytest.approx(0.3)
    assert geometry.pad_x == 0 and geometry.pad_y == 84
    assert (boxed[:84] == detector.PAD_VALUE).all() and (boxed[-84:] == detector.PAD_VALUE).all()
    assert (boxed[84:300] == 200).all()


@pytest.mark.parametrize("source, target", [((1080, 1920), (216, 384)), ((1080, 1920), (540, 960)),
                                            ((1441, 2561), (540, 960)), ((720, 1280), (216, 384)),
                                            ((101, 203), (7, 13)), ((20, 30), (40, 60))])
def test_resize_matches_one_averaging_step(source, target):
    """Halving first, then one last step, gives the size asked and (nearly) the pixels of a single
    pixel-averaging resize: a smooth image stays smooth, and an up-scale is plain bilinear."""
    height, width = source
    y, x = np.mgrid[0:height, 0:width]
    image = np.dstack([(x * 255 // width), (y * 255 // height), ((x + y) * 255 // (width + height))])
    image = image.astype(np.uint8)
    out = detector.resize(image, target[1], target[0])
    direct = cv2.resize(image, (target[1], target[0]),
                        interpolation=cv2.INTER_AREA if target[1] < width else cv2.INTER_LINEAR)
    assert out.shape == (*target, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - direct.astype(int)).max() <= 3


def test_input_tensor_is_rgb_nchw_unit_range():
    frame = np.zeros((10, 20, 3), np.uint8)
    frame[..., 2] = 255  # red in BGR
    tensor, _ = detector.preprocess(frame, 32)
    assert tensor.shape == (1, 3, 32, 32) and tensor.dtype == np.float32
    assert tensor[0, 0, 16, 16] == 1.0 and tensor[0, 2, 16, 16] == 0.0
    assert tensor[0, 1, 0, 0] == pytest.approx(114 / 255)


def test_input_tensor_is_each_pixel_over_255_in_rgb_order():
    image = np.random.default_rng(3).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    tensor = detector.to_input_tensor(image)
    expected = image[:, :, ::-1].astype(np.float32).transpose(2, 0, 1)[None] / 255.0
    assert tensor.flags.c_contiguous and np.allclose(tensor, expected, rtol=0, atol=1e-7)


def test_preprocess_rejects_non_bgr_frames():
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        detector.preprocess(np.zeros((10, 10), np.uint8), 32)


def test_box_round_trip_through_letterbox():
    geometry = detector.letterbox(np.zeros((720, 1280, 3), np.uint8), 384)[1]
    frame_box = (400.0, 500.0, 640.0, 560.0)
    model_box = tuple(
        v * geometry.scale + (geometry.pad_x if i % 2 == 0 else geometry.pad_y)
        for i, v in enumerate(frame_box)
    )
    assert detector.unmap_box(model_box, geometry, 1280, 720) == pytest.approx(frame_box)


def test_parse_output_filters_sorts_clips_and_accepts_batch_dims():
    geometry = detector.Letterbox(scale=0.5, pad_x=0.0, pad_y=10.0)
    rows = np.array(
        [
            [
                [0, 10, 20, 50, 40, 0, 0.4],
                [0, 0, 10, 400, 30, 0, 0.9],
                [0, 5, 5, 6, 6, 0, 0.99],  # above the frame after un-mapping: empty, dropped
                [0, 1, 1, 30, 30, 0, 0.1],
                [0, np.nan, 1, 30, 30, 0, 0.95],
            ]
        ],
        np.float32,
    )
    dets = detector.parse_output(rows, geometry, width=600, height=300, min_score=0.3)
    assert [d.score for d in dets] == pytest.approx([0.9, 0.4])
    assert (dets[0].x1, dets[0].y1, dets[0].x2, dets[0].y2) == (0.0, 0.0, 600.0, 40.0)
    assert (dets[1].x1, dets[1].y1, dets[1].x2, dets[1].y2) == (20.0, 20.0, 100.0, 60.0)


def test_parse_output_rejects_wrong_row_width_and_accepts_empty():
    geometry = detector.Letterbox(1.0, 0.0, 0.0)
    assert detector.parse_output(np.zeros((0, 7)), geometry, 10, 10, 0.3) == []
    with pytest.raises(ValueError, match="7 values per row"):
        detector.parse_output(np.zeros((3, 6)), geometry, 10, 10, 0.3)


def test_cut_grows_shrinks_and_repeats_edges_outside_the_image():
    image = np.arange(40 * 200, dtype=np.uint8).reshape(40, 200)
    grown = detector.cut(image, (10, 10, 110, 30), 0.1, 0.5)
    assert grown.shape == (40, 120) and (grown == image[0:40, 0:120]).all()
    shrunk = detector.cut(image, (10, 10, 110, 30), -0.1, -0.25)
    assert shrunk.shape == (10, 80) and (shrunk == image[15:25, 20:100]).all()
    padded = detector.cut(image, (0, 0, 200, 40), 0.05, 0.25)
    assert padded.shape == (60, 220)
    assert (padded[:10, 10:210] == image[0]).all() and (padded[10:50, :10] == image[:, :1]).all()

    clipped = detector.cut(image, (0, 0, 200, 40), 0.05, 0.25, clip=True)
    assert clipped.shape == image.shape and (clipped == image).all()


@given(
    st.tuples(st.floats(-50, 250), st.floats(-50, 90), st.floats(1, 300), st.floats(1, 100)),
    st.floats(-0.4, 0.5),
    st.floats(-0.4, 0.5),
)
def test_cut_never_returns_an_empty_image(box, margin_x, margin_y):
    x, y, w, h = box
    out = detector.cut(np.zeros((40, 200, 3), np.uint8), (x, y, x + w, y + h), margin_x, margin_y)
    assert out.size > 0 and out.shape[2] == 3
