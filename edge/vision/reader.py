"""Plate reading with onnxruntime: detector on the frame, OCR on each detected crop."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edge.vision import bundle, consensus, detector, ocr, plates
from edge.vision.roi import Roi
from edge.vision.types import ModelError, PlateRead

__all__ = ["PlateOcr", "PlateDetector", "PlateRead", "PlateReader", "make_session"]

# Crop margins (fractions of the detection's width, height) each detection is read with: detector boxes
# cut plates a little differently from frame to frame; reading several cuts and voting removes most
# reads that lost or gained an edge character (on plates-eu: 72 -> 82 of 108 exact, see models/cards).
# The detector's boxes are looser than the crops the OCR learned from (on lane frames a median 7 % wider
# and 12 % taller), so the cuts sit inside the box vertically; horizontally they never cut into it, since a
# box that ends at an edge character (seen on rendered plates) would lose that character. Chosen on
# training splits only, plates placed into 1920x1080 frames, with the lane-stage OCR: exact reads of the
# US train half (120, at 60 / 100 / 140 px) + BR crops (one in seven, `--region br`, 60 / 100 px) +
# plates-eu train third (35, `sk,cz`, 60 / 100 / 140 px) were 331 + 169 + 100 = 600 of 1,130 with these
# margins, 314 + 158 + 100 = 572 with the earlier ((0.06, 0.15), (0.02, 0.06), (0.10, 0.25), (0.04, 0.30)),
# and 605 with cuts inside the box on both axes, which read 194 of 240 rendered demo frames against 203
# here and 211 with the earlier margins (the detector ends some rendered plates' boxes at the last character).
CROP_MARGINS = ((0.03, -0.04), (0.0, -0.08), (0.08, 0.06), (0.05, 0.12))
OFF_LAYOUT_WEIGHT = 0.5  # rank factor of a read that fits none of the region's layouts
# Detections narrower than REFINE_BELOW_PX frame pixels are looked at again with the plate REFINE_PLATE_PX
# wide (`PlateDetector.refine`): on the held-out plates-eu sweep it tightened 40-80 px plates (60 px: 0.74
# -> 0.75 exact) and loosened wider ones (140 px: 0.92 -> 0.89), so only small plates are refined.
# Boxes from REFINE_BELOW_PX to TIGHTEN_BELOW_PX px are refined too, and then widened by TIGHTEN_PAD of
# their width on each side within the box they refine: the union box of a 100 px plate in a 1920x1080 frame
# is about 140 x 45 px (IoU with the plate under 0.4), and a refined box may end at a rendered plate's last
# character. Chosen on the training splits (models/cards/plate_detector.md).
REFINE_PLATE_PX = 96
REFINE_BELOW_PX = 120
TIGHTEN_BELOW_PX = 160
TIGHTEN_PAD = 0.05
# The same for an image that is already a plate crop: as given, padded (edges repeated) and cut inside
# (on the held-out plates-us-crops: 311 -> 332 of 380 exact with the earlier OCR, see models/cards).
WHOLE_CROP_MARGINS = ((0.0, 0.0), (0.04, 0.1), (-0.03, -0.08), (0.0, -0.15), (0.08, 0.0))
# The detector's two passes over a frame (`PlateDetector.input_sizes`): at most FINE_WIDTH px wide (lane
# plates), and COARSE_WIDTH px wide (close-ups wider than the detector learned).
FINE_WIDTH = 960
COARSE_WIDTH = 384


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
    # The detector sees frames of several input sizes: onnxruntime's CPU arena and memory patterns keep
    # buffers for each size they met and never give them back. Without them the daemon stays smaller
    # (`make bench` rss_mb) and reads no slower (malloc reuses freed blocks).
    options.enable_cpu_mem_arena = False
    options.enable_mem_pattern = False
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime's own types (InvalidProtobuf, Fail, ...)
        raise ModelError(f"{path}: not a loadable ONNX model: {exc}") from exc


class PlateOcr:
    """An OCR model in the fast-plate-ocr contract."""

    def __init__(
        self, model_path: str | Path, config: ocr.OcrConfig, threads: int = 2, region: str = "any"
    ) -> None:
        self.config = config
        self.layouts = plates.region_patterns(region)
        self.session = make_session(model_path, threads)
        self.input_name = self.session.get_inputs()[0].name

    def read_crops(self, crops_bgr: list[np.ndarray]) -> list[PlateRead]:
        """One read per crop (in one batch): the text fitted to the region's layouts and normalised,
        a confidence per kept character, and the raw text before layout fitting."""
        if not crops_bgr:
            return []
        batch = ocr.preprocess(crops_bgr, self.config)
        probs = self.session.run(None, {self.input_name: batch})[0]
        decoded = ocr.decode(probs, self.config, self.layouts)
        raw = ocr.decode(probs, self.config) if self.layouts else decoded
        reads = []
        for (text, chars), (raw_text, _) in zip(decoded, raw, strict=True):
            kept = [(c.upper(), score) for c, score in zip(text, chars, strict=True) if plates.normalise(c)]
            confidences = tuple(score for _, score in kept)
            reads.append(PlateRead("".join(c for c, _ in kept), ocr.plate_confidence(confidences),
                                   confidences, raw_text=plates.normalise(raw_text)))
        return reads


class PlateDetector:
    """A detector in the end-to-end YOLO contract (rows of 7). A model with a fixed input is letterboxed into
    it. One whose input height and width are free (our own) sees the frame twice, as an image pyramid:
    scaled to at most `input_width` wide (a 1920x1080 frame keeps lane-camera plates of 60-150 px at
    30-75 px), and to `coarse_width` (close-ups whose plate is wider than the detector learned); boxes found
    twice are merged."""

    def __init__(
        self,
        model_path: str | Path,
        threads: int = 2,
        min_score: float = 0.3,
        input_width: int = FINE_WIDTH,
        coarse_width: int = COARSE_WIDTH,
    ) -> None:
        self.session = make_session(model_path, threads)
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.fixed_size = _fixed_size(model_input.shape)
        self.input_width, self.coarse_width = input_width, coarse_width
        self.min_score = min_score

    def input_sizes(self, width: int, height: int) -> list[tuple[int, int]]:
        """The (width, height) inputs a `width` x `height` image is fitted into, finest first."""
        if self.fixed_size:
            return [self.fixed_size]
        fine = detector.free_size(width, height, self.input_width)
        coarse = detector.free_size(width, height, self.coarse_width)
        return [fine] if coarse[0] >= fine[0] else [fine, coarse]

    def detect(self, frame_bgr: np.ndarray) -> list[detector.Detection]:
        """Boxes in frame pixels, best first; a plate found at two scales is one box (`detector.merge`)."""
        height, width = frame_bgr.shape[:2]
        found: list[detector.Detection] = []
        for size in self.input_sizes(width, height):
            tensor, geometry = detector.preprocess(frame_bgr, size)
            output = self.session.run(None, {self.input_name: tensor})[0]
            found += detector.parse_output(output, geometry, width, height, self.min_score)
        return detector.merge(found)

    def refine(self, frame_bgr: np.ndarray, found: detector.Detection) -> detector.Detection:
        """The box looked at again at the scale the detector knows best (`_looked_again`): a box under
        REFINE_BELOW_PX becomes the refined one; one under TIGHTEN_BELOW_PX the refined one widened by
        TIGHTEN_PAD on each side, no wider than itself (an edge character the refined box ends at stays in).
        Wide boxes and no match keep the box."""
        width = found.x2 - found.x1
        if self.fixed_size or width >= TIGHTEN_BELOW_PX:
            return found
        again = self._looked_again(frame_bgr, found)
        if again is None:
            return found
        if width < REFINE_BELOW_PX:
            return again
        pad = TIGHTEN_PAD * (again.x2 - again.x1)
        return replace(again, x1=max(found.x1, again.x1 - pad), x2=min(found.x2, again.x2 + pad))

    def _looked_again(self, frame_bgr: np.ndarray, found: detector.Detection) -> detector.Detection | None:
        """A window of 3 plate widths around the box, cut from the full frame and scaled so the plate is
        about REFINE_PLATE_PX wide, detected again: the coarse box of a small plate (seen at 1/2 scale or
        less) becomes a tight one. None when nothing there overlaps the box."""
        width, height = found.x2 - found.x1, found.y2 - found.y1
        window = (found.x1 - width, found.y1 - max(height, width * 0.25), found.x2 + width,
                  found.y2 + max(height, width * 0.25))
        crop = detector.cut(frame_bgr, window, 0.0, 0.0)
        scale = REFINE_PLATE_PX / max(width, 1.0)
        size = detector.free_size(round(crop.shape[1] * scale), round(crop.shape[0] * scale), 10_000)
        tensor, geometry = detector.preprocess(crop, size)
        output = self.session.run(None, {self.input_name: tensor})[0]
        left, top = np.floor(window[0]), np.floor(window[1])
        box = (found.x1 - left, found.y1 - top, found.x2 - left, found.y2 - top)
        candidates = [
            d for d in detector.parse_output(output, geometry, crop.shape[1], crop.shape[0], self.min_score)
            if detector.iou(box, (d.x1, d.y1, d.x2, d.y2)) > 0.3
        ]
        if not candidates:
            return None
        best = max(candidates, key=lambda d: d.score)
        return replace(best, x1=best.x1 + left, y1=best.y1 + top, x2=best.x2 + left, y2=best.y2 + top,
                       score=max(best.score, found.score))


def _fixed_size(shape: list) -> tuple[int, int] | None:
    """(width, height) of a fixed NCHW input; None when both are free (symbolic); errors otherwise."""
    if len(shape) != 4:
        raise ValueError(f"detector input must be NCHW, got shape {shape}")
    height, width = shape[2], shape[3]
    if isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0:
        return width, height
    if not isinstance(height, int) and not isinstance(width, int):
        return None
    raise ValueError(f"detector input must have a fixed or a free height and width, got {shape}")


class PlateReader:
    """Detector + OCR: frame in, plate reads (best first) out."""

    def __init__(
        self,
        detector_path: str | Path = bundle.DEFAULT_DETECTOR_PATH,
        ocr_path: str | Path = bundle.DEFAULT_OCR_PATH,
        ocr_config: str | Path | ocr.OcrConfig = bundle.OCR_CONFIG_PATH,
        threads: int = 2,
        min_score: float = 0.3,
        max_plates: int = 3,
        region: str = "any",
        refine: bool = True,
    ) -> None:
        """`region`: plate layouts to fit reads to (`plates.region_patterns`, e.g. "eu" or "sk,cz").
        `max_plates`: how many of the detector's best boxes are read (each in len(CROP_MARGINS) cuts,
        one OCR batch row per cut)."""
        config = ocr_config if isinstance(ocr_config, ocr.OcrConfig) else ocr.load_config(ocr_config)
        self.detector = PlateDetector(detector_path, threads, min_score)
        self.ocr = PlateOcr(ocr_path, config, threads, region)
        self.max_plates = max_plates
        self.refine = refine

    def read(self, frame_bgr: np.ndarray, roi: Roi | None = None) -> list[PlateRead]:
        """Plates in a frame (inside `roi` when given), best first: `find`, then `read_boxes`."""
        return self.read_boxes(frame_bgr, self.find(frame_bgr, roi))

    def find(self, frame_bgr: np.ndarray, roi: Roi | None = None) -> list[detector.Detection]:
        """The detector's best `max_plates` boxes in frame pixels. With a lane `roi` the detector sees only
        the ROI's bounding box, cut from the frame before any scaling (a small plate keeps its pixels),
        and boxes whose centre is outside the polygon are dropped."""
        if roi is None:
            return self._refined(frame_bgr, self.detector.detect(frame_bgr))
        height, width = frame_bgr.shape[:2]
        x0, y0, x1, y1 = roi.bounds(width, height)
        found = self.detector.detect(frame_bgr[y0:y1, x0:x1])
        shifted = [replace(d, x1=d.x1 + x0, y1=d.y1 + y0, x2=d.x2 + x0, y2=d.y2 + y0) for d in found]
        inside = [d for d in shifted if roi.contains((d.x1 + d.x2) / 2, (d.y1 + d.y2) / 2, width, height)]
        return self._refined(frame_bgr, inside)

    def _refined(self, frame_bgr: np.ndarray, found: list[detector.Detection]) -> list[detector.Detection]:
        if not self.refine:
            return found[: self.max_plates]
        return [self.detector.refine(frame_bgr, d) for d in found[: self.max_plates]]

    def read_boxes(self, frame_bgr: np.ndarray, detections: list[detector.Detection]) -> list[PlateRead]:
        """Each detection read from several cuts of the full frame (CROP_MARGINS, all in one OCR batch); its
        cuts vote (`consensus.agree`); plates rank by support x detector score. Every detection is voted
        on, so a box read once cannot outrank a plate whose cuts disagree a little (on the held-out
        plates-eu frames: one more plate ranked first, for about 1.5 ms a frame)."""
        ranked = []
        for det, (best, support) in zip(detections, self._agreed(frame_bgr, detections, CROP_MARGINS),
                                         strict=True):
            if best.text:
                box = (det.x1, det.y1, det.x2, det.y2)
                weight = support * det.score * self._layout_weight(best.text)
                ranked.append((weight, replace(best, box=box, detector_score=det.score)))
        return [read for _, read in sorted(ranked, key=lambda pair: pair[0], reverse=True)]

    def _layout_weight(self, text: str) -> float:
        """With region layouts, text in none of them (a sign, a sticker, half a plate) ranks lower."""
        layouts = self.ocr.layouts
        return 1.0 if not layouts or plates.matches_any(text, layouts) else OFF_LAYOUT_WEIGHT

    def _agreed(self, image: np.ndarray, boxes: list[detector.Detection],
                margins: tuple[tuple[float, float], ...]) -> list[tuple[PlateRead, float]]:
        """Per box: the read its cuts (one per margin, all in one OCR batch) agree on, and its support."""
        reads = self.ocr.read_crops([detector.cut(image, (b.x1, b.y1, b.x2, b.y2), mx, my)
                                     for b in boxes for mx, my in margins])
        per_box = [reads[i * len(margins):(i + 1) * len(margins)] for i in range(len(boxes))]
        return [consensus.agree(cuts) or (PlateRead("", 0.0), 0.0) for cuts in per_box]

    def read_crop(self, crop_bgr: np.ndarray) -> PlateRead:
        """OCR only, for an image that is already a plate crop (read in WHOLE_CROP_MARGINS cuts that vote)."""
        height, width = crop_bgr.shape[:2]
        whole = detector.Detection(0.0, 0.0, float(width), float(height), 1.0)
        best, _ = self._agreed(crop_bgr, [whole], WHOLE_CROP_MARGINS)[0]
        return replace(best, box=(whole.x1, whole.y1, whole.x2, whole.y2))
