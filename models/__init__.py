"""Plate models: training code (optional torch extra), committed ONNX weights and their cards."""

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DETECTOR_PATH = WEIGHTS_DIR / "plate_detector.onnx"
DETECTOR_INT8_PATH = WEIGHTS_DIR / "plate_detector.int8.onnx"
OCR_PATH = WEIGHTS_DIR / "plate_ocr.onnx"
OCR_INT8_PATH = WEIGHTS_DIR / "plate_ocr.int8.onnx"
OCR_CONFIG_PATH = WEIGHTS_DIR / "plate_ocr.yaml"
