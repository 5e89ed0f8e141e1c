"""Motion gating: a cheap frame difference inside a lane's region of interest, so the plate reader runs
only on frames where something moves (approach reading, `edge.daemon.approach`).

Each frame's ROI bounding box is cut, turned grey, shrunk to `MotionSettings.width` pixels wide and
blurred; it counts as moving when more than `min_fraction` of its pixels differ from the previous frame's
by more than `pixel_delta` grey levels. Shrinking and blurring average the sensor noise away, so a static
scene (a camera with noise and JPEG artefacts) stays still, and the test costs well under a millisecond.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.vision.roi import Roi


@dataclass(frozen=True)
class MotionSettings:
    width: int = 160  # the ROI is compared this many pixels wide
    pixel_delta: int = 10  # a pixel changed: its grey level moved by more than this (a dark car at night)
    min_fraction: float = 0.002  # the frame moved: more than this share of the ROI's pixels changed


def thumbnail(image: np.ndarray, roi: Roi | None, width: int) -> np.ndarray:
    """The ROI's bounding box (the whole frame without one) as a blurred grey image `width` px wide."""
    height, full_width = image.shape[:2]
    x0, y0, x1, y1 = roi.bounds(full_width, height) if roi else (0, 0, full_width, height)
    crop = image[y0:y1, x0:x1]
    scale = min(1.0, width / max(1, crop.shape[1]))
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    if scale < 0.5:  # pick pixels down to twice the size first: a third of the cost of averaging them all
        crop = cv2.resize(crop, (size[0] * 2, size[1] * 2), interpolation=cv2.INTER_NEAREST)
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    small = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(small, (5, 5), 0)


def changed_fraction(before: np.ndarray, after: np.ndarray, pixel_delta: int) -> float:
    """Share of pixels whose grey level differs by more than `pixel_delta`; 1.0 when the sizes differ (a
    camera that changed resolution has moved)."""
    if before.shape != after.shape:
        return 1.0
    return float(np.count_nonzero(cv2.absdiff(before, after) > pixel_delta)) / max(1, after.size)


class MotionGate:
    """Says for each frame whether it moved against the frame before it (the first frame is the reference:
    it has not moved)."""

    def __init__(self, roi: Roi | None = None, settings: MotionSettings = MotionSettings()) -> None:
        self.roi = roi
        self.settings = settings
        self._previous: np.ndarray | None = None
        self.frames = 0  # frames looked at
        self.moving = 0  # ... of which moved

    def moved(self, image: np.ndarray) -> bool:
        small = thumbnail(image, self.roi, self.settings.width)
        before, self._previous = self._previous, small
        moved = before is not None and changed_fraction(before, small, self.settings.pixel_delta) > \
            self.settings.min_fraction
        self.moving += moved
        self.frames += 1  # last: a frame counted as looked at has its verdict counted too (status readers)
        return moved

    @property
    def reference(self) -> np.ndarray | None:
        """The thumbnail of the last frame looked at (the next one is compared with it)."""
        return self._previous

    def reset(self) -> None:
        """Forget the previous frame: the next one is the new reference."""
        self._previous = None
