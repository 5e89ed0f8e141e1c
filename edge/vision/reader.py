"""Plate reading with onnxruntime: detector on the frame, OCR on each detected crop."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort

import models
from edge.vision import consensus, detector, ocr, plates
from edge.vision.roi import Roi
from edge.vision.types import PlateRead

__all__ = ["PlateOcr", "PlateDetector", "PlateRead", "PlateReader", "make_session"]

# Crop margins (fractions of the detection's width, height) each detection is read with: detector boxes
# cut plates a little differently from frame to frame; reading several cuts and voting removes most
# reads that lost or gained an edge character (on plates-eu: 72 -> 82 of 108 exact, see models/cards).
CROP_MARGINS = ((0.06, 0.15), (0.02, 0.06), (0.10, 0.25), (0.04, 0.30))
OFF_LAYOUT_WEIGHT = 0.5  # rank factor of a read that fits none of the region's layouts
# The same for an image that is already a plate crop: as given, padded (edges repeated) and cut inside
# (on the held-out plates-us-crops: 311 -> 332 of 380 exact with the earlier OCR, see models/cards).
WHOLE_CROP_MARGINS = ((0.0, 0.0), (0.04, 0.1), (-0.03, -0.08), (0.0, -0.15), (0.08, 0.0))


def make_session(path: str | Path, threads: int) -> ort.InferenceSession:
    """CPU session with a fixed thread budget (the gateway shares its cores)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle pool threads would spin for a while after each run and steal the cores from the next session
    # (detector, then OCR): on 2 cores a frame took 40 ms with spinning, 19 ms without.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class PlateOcr:
    """An OCR model in the fast-plate-ocr contract."""

    def __init__(
        self, model_path: str | Path, config: ocr.OcrConfig, threads: int = 2, region: str = "any"
    ) -> None:
        self.config = config
        self.layouts = plates.region_patterns(region)
        self.session = make_session(model_path, threads)
        self.input_name = self.session.get_inputs()[0].name

    def read_crops(self, crops_bgr: list[np.ndarray]) -> list[tuple[str, list[float]]]:
        """(normalised text, confidence per kept character) for each crop."""
        if not crops_bgr:
            return []
        batch = ocr.preprocess(crops_bgr, self.config)
        decoded = ocr.decode(self.session.run(None, {self.input_name: batch})[0], self.config, self.layouts)
        return [_normalised(text, chars) for text, chars in decoded]


def _normalised(text: str, chars: list[float]) -> tuple[str, list[float]]:
    """Apply `plates.normalise` to a read, keeping each surviving character's confidence."""
    kept = [(c.upper(), s) for c, s in zip(text, chars, strict=True) if plates.normalise(c)]
    return "".join(c for c, _ in kept), [s for _, s in kept]


class PlateDetector:
    """A detector in the end-to-end YOLO contract (square input, rows of 7)."""

    def __init__(self, model_path: str | Path, threads: int = 2, min_score: float = 0.3) -> None:
        self.session = make_session(model_path, threads)
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.size = _square_side(model_input.shape)
        self.min_score = min_score

    def detect(self, frame_bgr: np.ndarray) -> list[detector.Detection]:
        tensor, geometry = detector.preprocess(frame_bgr, self.size)
        output = self.session.run(None, {self.input_name: tensor})[0]
        height, width = frame_bgr.shape[:2]
        return detector.parse_output(output, geometry, width, height, self.min_score)


def _square_side(shape: list) -> int:
    side = shape[-1]
    if not isinstance(side, int) or shape[-2] != side:
        raise ValueError(f"detector input must be a fixed square NCHW shape, got {shape}")
    return side


def _shifted(read: PlateRead, dx: int, dy: int) -> PlateRead:
    x1, y1, x2, y2 = read.box
    return replace(read, box=(x1 + dx, y1 + dy, x2 + dx, y2 + dy))


def _centred_in(read: PlateRead, roi: Roi, width: int, height: int) -> bool:
    x1, y1, x2, y2 = read.box
    return roi.contains((x1 + x2) / 2, (y1 + y2) / 2, width, height)


class PlateReader:
    """Detector + OCR: frame in, plate reads (best first) out."""

    def __init__(
        self,
        detector_path: str | Path = models.DETECTOR_PATH,
        ocr_path: str | Path = models.OCR_PATH,
        ocr_config: str | Path | ocr.OcrConfig = models.OCR_CONFIG_PATH,
        threads: int = 2,
        min_score: float = 0.3,
        max_plates: int = 3,
        region: str = "any",
    ) -> None:
        """`region`: plate layouts to fit reads to (`plates.region_patterns`, e.g. "eu" or "sk,cz").
        `max_plates`: how many of the detector's best boxes are read (each in len(CROP_MARGINS) cuts,
        one OCR batch row per cut)."""
        config = ocr_config if isinstance(ocr_config, ocr.OcrConfig) else ocr.load_config(ocr_config)
        self.detector = PlateDetector(detector_path, threads, min_score)
        self.ocr = PlateOcr(ocr_path, config, threads, region)
        self.max_plates = max_plates

    def read(self, frame_bgr: np.ndarray, roi: Roi | None = None) -> list[PlateRead]:
        """Plates in a frame, best first. Each detection is read from several cuts (CROP_MARGINS, all in
        one OCR batch) and its cuts vote (`consensus.agree`); plates rank by support x detector score.
        Every detection is voted on, so a box read once cannot outrank a plate whose cuts disagree a little
        (on the held-out plates-eu frames: one more plate ranked first, for about 1.5 ms a frame)."""
        if roi is not None:  # read inside its bounds; keep the reads centred in the polygon
            height, width = frame_bgr.shape[:2]
            x0, y0, x1, y1 = roi.bounds(width, height)
            reads = [_shifted(read, x0, y0) for read in self.read(frame_bgr[y0:y1, x0:x1])]
            return [read for read in reads if _centred_in(read, roi, width, height)]
        detections = self.detector.detect(frame_bgr)[: self.max_plates]
        boxes = [(det.x1, det.y1, det.x2, det.y2) for det in detections]
        agreed = self._read_cuts(frame_bgr, boxes, CROP_MARGINS)
        ranked = [
            (
                support * det.score * self._layout_weight(best.text),
                PlateRead(best.text, best.confidence, best.char_confidences, box, det.score),
            )
            for det, box, (best, support) in zip(detections, boxes, agreed, strict=True)
            if best.text
        ]
        return [read for _, read in sorted(ranked, key=lambda pair: pair[0], reverse=True)]

    def _layout_weight(self, text: str) -> float:
        """With region layouts, text in none of them (a sign, a sticker, half a plate) ranks lower."""
        layouts = self.ocr.layouts
        return 1.0 if not layouts or plates.matches_any(text, layouts) else OFF_LAYOUT_WEIGHT

    def _read_cuts(
        self, image: np.ndarray, boxes: list, margins: tuple[tuple[float, float], ...]
    ) -> list[tuple[PlateRead, float]]:
        """Per box: the read its cuts (one per margin, all in one OCR batch) agree on, and its support."""
        cuts = [detector.cut(image, box, mx, my) for box in boxes for mx, my in margins]
        texts = self.ocr.read_crops(cuts)
        results = []
        for index in range(len(boxes)):
            variants = texts[index * len(margins) : (index + 1) * len(margins)]
            reads = [PlateRead(text, ocr.plate_confidence(chars), tuple(chars)) for text, chars in variants]
            results.append(consensus.agree(reads) or (PlateRead("", 0.0), 0.0))
        return results

    def read_crop(self, crop_bgr: np.ndarray) -> PlateRead:
        """OCR only, for an image that is already a plate crop (read in WHOLE_CROP_MARGINS cuts that vote)."""
        height, width = crop_bgr.shape[:2]
        box = (0.0, 0.0, float(width), float(height))
        best, _ = self._read_cuts(crop_bgr, [box], WHOLE_CROP_MARGINS)[0]
        return PlateRead(best.text, best.confidence, best.char_confidences, box)
