"""Plate OCR contract (fast-plate-ocr style) and its pure pre/post-processing.

A YAML config names the model's geometry and alphabet: ``max_plate_slots``, ``alphabet``, ``pad_char``,
``img_height``, ``img_width``, ``keep_aspect_ratio``, ``image_color_mode`` (grayscale or rgb).
Input: uint8 NHWC. Output: per slot a softmax over the alphabet, shaped (N, slots, alphabet) or
(N, slots * alphabet).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

from edge.vision import plates
from edge.vision.types import ModelError

COLOR_MODES = ("grayscale", "rgb")


@dataclass(frozen=True)
class OcrConfig:
    """Geometry and alphabet of a plate OCR model."""

    max_plate_slots: int
    alphabet: str
    pad_char: str
    img_height: int
    img_width: int
    keep_aspect_ratio: bool = False
    image_color_mode: str = "grayscale"

    @property
    def channels(self) -> int:
        return 1 if self.image_color_mode == "grayscale" else 3


def config_from_dict(data: dict, source: str = "OCR config") -> OcrConfig:
    """Validate a parsed YAML mapping; errors name the bad key and what is allowed."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a mapping of keys, got {type(data).__name__}")
    required = ("max_plate_slots", "alphabet", "pad_char", "img_height", "img_width")
    missing = [key for key in required if key not in data]
    if missing:
        raise ValueError(f"{source}: missing keys {missing}; required: {list(required)}")
    config = OcrConfig(
        max_plate_slots=_positive_int(data, "max_plate_slots", source),
        alphabet=str(data["alphabet"]),
        pad_char=str(data["pad_char"]),
        img_height=_positive_int(data, "img_height", source),
        img_width=_positive_int(data, "img_width", source),
        keep_aspect_ratio=bool(data.get("keep_aspect_ratio", False)),
        image_color_mode=str(data.get("image_color_mode", "grayscale")).lower(),
    )
    if len(config.pad_char) != 1 or config.pad_char not in config.alphabet:
        raise ValueError(f"{source}: pad_char must be one character of the alphabet, got {config.pad_char!r}")
    if len(set(config.alphabet)) != len(config.alphabet):
        raise ValueError(f"{source}: alphabet has repeated characters: {config.alphabet!r}")
    if config.image_color_mode not in COLOR_MODES:
        raise ValueError(
            f"{source}: image_color_mode must be one of {COLOR_MODES}, got {config.image_color_mode!r}"
        )
    return config


def _positive_int(data: dict, key: str, source: str) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{source}: {key} must be a positive integer, got {value!r}")
    return value


def load_config(path: str | Path) -> OcrConfig:
    """Read an OCR YAML file (fast-plate-ocr layout)."""
    with open(path, encoding="utf-8") as handle:
        try:
            return config_from_dict(yaml.safe_load(handle), source=str(path))
        except (yaml.YAMLError, ValueError) as exc:
            raise ModelError(f"{path}: not a usable OCR config: {exc}") from exc


def preprocess(crops_bgr: list[np.ndarray], config: OcrConfig) -> np.ndarray:
    """Plate crops (BGR uint8) -> uint8 NHWC batch at the model's size and colour mode."""
    return np.stack([_prepare(crop, config) for crop in crops_bgr])


def _prepare(crop: np.ndarray, config: OcrConfig) -> np.ndarray:
    if config.image_color_mode == "grayscale":
        image = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    else:
        image = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
    size = (config.img_width, config.img_height)
    if config.keep_aspect_ratio:
        image = _fit_keep_aspect(image, size)
    else:
        image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    return image.reshape(config.img_height, config.img_width, config.channels)


def _fit_keep_aspect(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    scale = min(width / image.shape[1], height / image.shape[0])
    new_w, new_h = max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    canvas = np.zeros((height, width) + image.shape[2:], dtype=np.uint8)
    canvas[:new_h, :new_w] = resized
    return canvas


def decode(
    probs: np.ndarray, config: OcrConfig, layouts: tuple[str, ...] = ()
) -> list[tuple[str, list[float]]]:
    """Slot probabilities -> per plate (text without pad chars, confidence of each kept char).

    With region `layouts` (see `plates.region_patterns`), a read is refitted to the most probable
    layout (`plates.fit_layout`); a read that fits none well is returned as read.
    """
    slots, alphabet = config.max_plate_slots, len(config.alphabet)
    array = np.asarray(probs, dtype=np.float32)
    if array.size % (slots * alphabet) != 0:
        raise ValueError(
            f"OCR output of shape {array.shape} does not fit {slots} slots x {alphabet} alphabet characters"
        )
    array = array.reshape(-1, slots, alphabet)
    pad = config.alphabet.index(config.pad_char)
    return [_decode_plate(rows[rows.argmax(axis=-1) != pad], config.alphabet, layouts) for rows in array]


def _decode_plate(rows: np.ndarray, alphabet: str, layouts: tuple[str, ...]) -> tuple[str, list[float]]:
    fit = plates.fit_layout(rows.tolist(), alphabet, layouts) if layouts and len(rows) else None
    if fit is not None:
        return fit.text, list(fit.char_confidences)
    best = rows.argmax(axis=-1)
    return "".join(alphabet[i] for i in best), [float(s) for s in rows.max(axis=-1)]


def plate_confidence(char_confidences: Sequence[float]) -> float:
    """A plate is as sure as its least sure character; an empty read has confidence 0."""
    return min(char_confidences) if char_confidences else 0.0
