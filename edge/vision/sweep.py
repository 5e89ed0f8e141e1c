"""Lane-geometry sweep: labelled plate images placed into full camera frames at given plate widths.

A lane camera sees a plate 60-150 px wide in a 1280x720 to 2560x1440 frame; close-up photos do not show
whether a reader finds such plates. `place` scales a labelled image so that its plate is `plate_width`
pixels wide, turns it by up to 15 degrees, puts it into a background scene of the frame size and degrades
the frame like a camera (blur, sensor noise, JPEG). The maths (`placement`) is pure and tested; every
frame is seeded by its image, width and frame size, so two runs place the same frames.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from edge.vision.detector import Box, iou
from edge.vision.evaluate import Sample, read_counts

if TYPE_CHECKING:
    from edge.vision.reader import PlateReader

WIDTHS = (40, 60, 80, 100, 140, 200, 300)
FRAME_SIZES = ((1280, 720), (1920, 1080))
MAX_TURN_DEG = 15.0


@dataclass(frozen=True)
class Placement:
    """How a source image goes into a frame: the 3x3 homography (source -> frame pixels) and where its
    plate box lands (axis-aligned, frame pixels)."""

    matrix: np.ndarray
    plate_box: tuple[float, float, float, float]


@dataclass(frozen=True)
class Outcome:
    """One placed frame read: the plate width asked, whether a detection covered the plate, the best
    read's text, the label, and the reading time (ms)."""

    width: int
    detected: bool
    text: str
    label: str
    ms: float


def turn_quad(width: float, height: float, degrees: float) -> np.ndarray:
    """Corners (TL, TR, BR, BL) of a `width` x `height` rectangle seen turned by `degrees` about its
    vertical axis from about 4 widths away: narrower by cos, the far side a little shorter."""
    angle = np.deg2rad(degrees)
    squeeze = np.cos(angle)
    far = 1.0 - 0.25 * abs(np.sin(angle))  # far side / near side height, at about 4 widths' distance
    half_w, half_h = width * squeeze / 2, height / 2
    left, right = (far, 1.0) if degrees > 0 else (1.0, far)
    return np.array(
        [
            [-half_w, -half_h * left],
            [half_w, -half_h * right],
            [half_w, half_h * right],
            [-half_w, half_h * left],
        ],
        np.float32,
    )


def placement(
    source_size: tuple[int, int],
    plate_box: tuple[float, float, float, float],
    plate_width: float,
    frame_size: tuple[int, int],
    degrees: float,
    centre: tuple[float, float],
) -> Placement:
    """Map a source image (width, height) with its plate box (x, y, w, h) into a frame so that the plate
    is `plate_width` px wide before the turn, turned by `degrees`, with its centre at `centre` (frame px)."""
    src_w, src_h = source_size
    x, y, w, h = plate_box
    if w <= 0 or h <= 0 or plate_width <= 0:
        raise ValueError(f"plate box and width must be positive, got box {plate_box} width {plate_width}")
    scale = plate_width / w
    # The whole source is turned as one plane about the plate's centre.
    corners = np.array([[0, 0], [src_w, 0], [src_w, src_h], [0, src_h]], np.float32)
    plate_centre = np.array([x + w / 2, y + h / 2], np.float32)
    turned = turn_quad(src_w * scale, src_h * scale, degrees)
    # turn_quad is centred on the source centre; shift it so the plate's centre lands on `centre`.
    flat = (corners - np.array([src_w / 2, src_h / 2], np.float32)) * scale
    matrix_centred = cv2.getPerspectiveTransform(flat, turned)
    middle = np.array([src_w / 2, src_h / 2], np.float32)
    offset = _apply(matrix_centred, ((plate_centre - middle) * scale)[None])[0]
    shift = np.array([[1, 0, centre[0] - offset[0]], [0, 1, centre[1] - offset[1]], [0, 0, 1]])
    to_centred = np.array([[scale, 0, -src_w / 2 * scale], [0, scale, -src_h / 2 * scale], [0, 0, 1]])
    matrix = shift @ matrix_centred.astype(np.float64) @ to_centred
    plate = _apply(matrix, np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float32))
    frame_w, frame_h = frame_size
    x1, y1 = np.clip(plate.min(axis=0), 0, [frame_w, frame_h])
    x2, y2 = np.clip(plate.max(axis=0), 0, [frame_w, frame_h])
    return Placement(matrix, (float(x1), float(y1), float(x2), float(y2)))


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return cv2.perspectiveTransform(np.asarray(points, np.float32)[None], np.asarray(matrix, np.float64))[0]


def place(
    image: np.ndarray,
    plate_box: tuple[float, float, float, float],
    plate_width: int,
    frame_size: tuple[int, int],
    background: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """`image` with its plate `plate_width` px wide in a `frame_size` frame over `background`, turned by up
    to 15 degrees, then blurred, noised and JPEG-compressed; returns (frame, plate box x1 y1 x2 y2)."""
    frame_w, frame_h = frame_size
    centre = (frame_w * rng.uniform(0.2, 0.8), frame_h * rng.uniform(0.3, 0.85))
    degrees = float(rng.uniform(-MAX_TURN_DEG, MAX_TURN_DEG))
    where = placement(image.shape[1::-1], plate_box, plate_width, frame_size, degrees, centre)
    frame = cover(background, frame_size)
    mask = np.full(image.shape[:2], 255, np.uint8)
    warped = cv2.warpPerspective(image, where.matrix, frame_size, flags=cv2.INTER_AREA)
    alpha = cv2.warpPerspective(mask, where.matrix, frame_size, flags=cv2.INTER_LINEAR)
    alpha = (alpha.astype(np.float32) / 255.0)[..., None]
    frame = (frame * (1 - alpha) + warped * alpha).astype(np.uint8)
    return camera_effects(frame, rng), where.plate_box


def cover(background: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """`background` scaled to cover `frame_size` (width, height) and centre-cropped to it."""
    frame_w, frame_h = frame_size
    height, width = background.shape[:2]
    scale = max(frame_w / width, frame_h / height)
    size = (max(frame_w, round(width * scale)), max(frame_h, round(height * scale)))
    resized = cv2.resize(background, size)
    top, left = (resized.shape[0] - frame_h) // 2, (resized.shape[1] - frame_w) // 2
    return np.ascontiguousarray(resized[top : top + frame_h, left : left + frame_w])


def camera_effects(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Slight blur (sigma 0-0.8), sensor noise (sigma 0-4) and JPEG quality 60-90."""
    sigma = rng.uniform(0.0, 0.8)
    out = cv2.GaussianBlur(frame, (0, 0), sigma) if sigma > 0.2 else frame
    noisy = out.astype(np.float32) + rng.normal(0.0, rng.uniform(0.0, 4.0), out.shape).astype(np.float32)
    quality = int(rng.integers(60, 91))
    image = noisy.clip(0, 255).astype(np.uint8)
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    decoded = cv2.imdecode(buffer, cv2.IMREAD_COLOR) if ok else None
    if decoded is None:
        raise ValueError("JPEG encoding failed")
    return decoded


def seed_of(name: str, width: int, frame_size: tuple[int, int]) -> int:
    """A fixed seed per (image name, plate width, frame size)."""
    return zlib.crc32(f"{name}|{width}|{frame_size[0]}x{frame_size[1]}".encode())


def summarise(outcomes: Iterable[Outcome]) -> dict:
    """Outcomes -> {n, detection_recall, exact, exact_rate, folded, folded_rate, median_ms}, the read
    counts as `lpr eval` gives them (`evaluate.read_counts`)."""
    rows = list(outcomes)
    n = len(rows)
    return {
        "n": n,
        "detection_recall": round(sum(row.detected for row in rows) / n, 4) if n else 0.0,
        **read_counts((row.label, row.text) for row in rows),
        "median_ms": round(float(np.median([row.ms for row in rows])), 2) if n else 0.0,
    }


def per_width(outcomes: list[Outcome], widths: Iterable[int]) -> list[dict]:
    """One summary per plate width, in order, each with its `width`."""
    return [{"width": width, **summarise(o for o in outcomes if o.width == width)} for width in widths]


def detected(boxes: Iterable[Box], truth: Box) -> bool:
    """True when a detected box overlaps the placed plate with IoU >= 0.4."""
    return any(iou(box, truth) >= 0.4 for box in boxes)


def run(
    samples: list[Sample],
    reader: PlateReader,
    backgrounds: list[Path],
    frame_sizes: Iterable[tuple[int, int]] = FRAME_SIZES,
    widths: Iterable[int] = WIDTHS,
    on_outcome: Callable[[Sample, Outcome], None] | None = None,
) -> list[Outcome]:
    """Place every sample (an `evaluate.Sample`: image, plate, optional box x y w h; no box = the image is
    the plate) at every width into every frame size over one of `backgrounds` (image files, read when used)
    and read it with `reader` (`find` + `read_boxes`, both timed). `on_outcome(sample, outcome)` sees each
    result (progress, misses)."""
    outcomes = []
    for sample in samples:
        image = _image(sample.image)
        box = sample.box or (0, 0, image.shape[1], image.shape[0])
        for frame_size in frame_sizes:
            for width in widths:
                rng = np.random.default_rng(seed_of(sample.image.name, width, frame_size))
                background = _image(backgrounds[rng.integers(len(backgrounds))])
                frame, truth = place(image, box, width, frame_size, background, rng)
                started = time.perf_counter()
                detections = reader.find(frame)
                reads = reader.read_boxes(frame, detections)
                ms = (time.perf_counter() - started) * 1000
                boxes = [(d.x1, d.y1, d.x2, d.y2) for d in detections]
                text = reads[0].text if reads else ""
                outcome = Outcome(width, detected(boxes, truth), text, sample.plate, ms)
                outcomes.append(outcome)
                if on_outcome:
                    on_outcome(sample, outcome)
    return outcomes


def _image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read image {path}")
    return image
