"""The plate models parkgate ships with, found through ``importlib.resources`` as package data of
``edge.vision`` (folder ``weights/``).

In the repository ``edge/vision/weights`` is a link to ``models/weights`` (where ``make train`` writes and
the model cards live); the wheel copies the files into the package, so an installed parkgate needs
neither the repository nor a top-level ``models`` package.

The models read with unless told otherwise (`DEFAULT_DETECTOR_PATH`, `DEFAULT_OCR_PATH`: the reader, the
`[vision]` config and `parkgate lpr`) are the int8 files, the static quantisation of the fp32 files'
networks (`models/train.py` `quantise_static`; figures in models/cards/plate_detector.md). The fp32
files stay for retraining and for runtimes without int8 kernels.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

WEIGHTS_DIR = Path(str(resources.files(__package__ or "edge.vision") / "weights"))
DETECTOR_PATH = WEIGHTS_DIR / "plate_detector.onnx"
DETECTOR_INT8_PATH = WEIGHTS_DIR / "plate_detector.int8.onnx"
OCR_PATH = WEIGHTS_DIR / "plate_ocr.onnx"
OCR_INT8_PATH = WEIGHTS_DIR / "plate_ocr.int8.onnx"
OCR_CONFIG_PATH = WEIGHTS_DIR / "plate_ocr.yaml"
DEFAULT_DETECTOR_PATH = DETECTOR_INT8_PATH
DEFAULT_OCR_PATH = OCR_INT8_PATH
