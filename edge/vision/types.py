"""Plain data the vision pipeline produces, importable by pure code (no numpy, cv2 or onnxruntime)."""

from __future__ import annotations

from dataclasses import dataclass, field

# The plate width in frame pixels to aim and zoom for at the barrier: the reader is measured for plates of
# 60-300 px (`parkgate lpr sweep`, README; docs/install.md); `doctor` and the console's live view use it.
MIN_PLATE_WIDTH_PX = 80


class ModelError(ValueError):
    """A plate model or OCR config file that cannot be loaded (not ONNX, damaged, not valid YAML); the
    message names the file. The daemon's start names the config key from it."""


@dataclass(frozen=True)
class PlateRead:
    """One plate read: text (normalised, fitted to the region's layouts when one is set), confidence,
    per-character confidences, frame box, detector score and `raw_text`, the OCR's read before fitting."""

    text: str
    confidence: float
    char_confidences: tuple[float, ...] = field(default=())
    box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    detector_score: float = 1.0
    raw_text: str = ""
