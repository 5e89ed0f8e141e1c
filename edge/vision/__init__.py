"""Licence-plate recognition: camera capture, ONNX detector + OCR, consensus over a vehicle pass.

Pure modules (no I/O): `types` (PlateRead), `plates` (normalisation, region formats), `consensus`,
and the pre/post-processing functions in `detector` and `ocr`. I/O lives in `reader` (onnxruntime
sessions) and `camera` (OpenCV).
"""
