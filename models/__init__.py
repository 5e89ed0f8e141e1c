"""Plate models: training code (optional torch extra), committed ONNX weights and their cards.

Training writes into WEIGHTS_DIR; the product finds the same files as package data of ``edge.vision``
(``edge/vision/bundle.py`` names each file).
"""

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
