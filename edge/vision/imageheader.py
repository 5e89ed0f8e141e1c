"""An image file's width and height read from its header, without decoding it.

`parkgate lpr read` and `lpr eval` refuse an image with too many pixels before OpenCV decodes it: a 15 MB
JPEG of 20000x20000 pixels decodes to 1.2 GB, and a PNG of 900x150000 pixels made the reader run out of
memory. OpenCV has no call that reads only the header, and Pillow is no run-time dependency, so the
formats `edge.vision.sources` accepts are parsed here: JPEG, PNG, BMP, WebP, TIFF and PBM/PGM/PPM. The
format is told by the file's first bytes, as OpenCV tells it (not by the name).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

Size = tuple[int, int]  # width, height
FORMATS = "JPEG, PNG, BMP, WebP, TIFF, PBM/PGM/PPM"
# JPEG start-of-frame markers (they carry the size); C4 (DHT), C8 (JPG) and CC (DAC) are not frames
JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
JPEG_NO_LENGTH = frozenset((0x01, *range(0xD0, 0xD9)))  # TEM, RSTn and SOI stand alone


def image_size(path: str | Path) -> Size | None:
    """(width, height) from the header of the image at `path`; None when the file is none of the
    formats above or its header is cut short or damaged. OSError when the file cannot be read."""
    with open(path, "rb") as file:
        head = file.read(32)
        for signature, parse in PARSERS:
            if head.startswith(signature):
                file.seek(0)
                try:
                    return parse(file)
                except (struct.error, ValueError, IndexError):
                    return None
    return None


def _jpeg(file: BinaryIO) -> Size | None:
    """The size in the first start-of-frame segment, skipping the segments before it (EXIF, tables)."""
    file.seek(2)
    while True:
        byte = file.read(1)
        if not byte:
            return None
        if byte != b"\xff":
            continue
        marker = file.read(1)
        while marker == b"\xff":  # fill bytes
            marker = file.read(1)
        if not marker:
            return None
        code = marker[0]
        if code in JPEG_NO_LENGTH:
            continue
        if code in (0xD9, 0xDA):  # end of image, or image data before any frame header
            return None
        (length,) = struct.unpack(">H", file.read(2))
        if code in JPEG_FRAMES:
            _precision, height, width = struct.unpack(">BHH", file.read(5))
            return _valid(width, height)
        file.seek(length - 2, 1)


def _png(file: BinaryIO) -> Size | None:
    head = file.read(24)
    if head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return _valid(width, height)


def _bmp(file: BinaryIO) -> Size | None:
    head = file.read(26)
    (header_size,) = struct.unpack("<I", head[14:18])
    if header_size == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sides
        width, height = struct.unpack("<hh", head[18:22])
    else:
        width, height = struct.unpack("<ii", head[18:26])
    return _valid(width, abs(height))  # a negative height is a top-down bitmap


def _webp(file: BinaryIO) -> Size | None:
    head = file.read(30)
    if head[8:12] != b"WEBP":
        return None
    chunk, data = head[12:16], head[20:30]
    if chunk == b"VP8X":  # extended: the canvas size, 24 bits each, less one
        return _valid(int.from_bytes(data[4:7], "little") + 1, int.from_bytes(data[7:10], "little") + 1)
    if chunk == b"VP8L":  # lossless: 14 bits each, less one, after the 0x2f signature
        (bits,) = struct.unpack("<I", data[1:5])
        return _valid((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8 " and data[3:6] == b"\x9d\x01\x2a":  # lossy: a key frame's 14-bit sides
        width, height = struct.unpack("<HH", data[6:10])
        return _valid(width & 0x3FFF, height & 0x3FFF)
    return None


def _tiff(file: BinaryIO) -> Size | None:
    """ImageWidth (256) and ImageLength (257) of the first image file directory (the page OpenCV reads)."""
    order = "<" if file.read(2) == b"II" else ">"
    (magic, offset) = struct.unpack(f"{order}HI", file.read(6))
    if magic != 42:  # 43 is BigTIFF
        return None
    file.seek(offset)
    (count,) = struct.unpack(f"{order}H", file.read(2))
    sides: dict[int, int] = {}
    for _ in range(min(count, 4096)):
        tag, kind, _n, value = struct.unpack(f"{order}HHI4s", file.read(12))
        if tag in (256, 257):
            fmt = f"{order}H" if kind == 3 else f"{order}I"  # SHORT or LONG
            sides[tag] = struct.unpack(fmt, value[: struct.calcsize(fmt)])[0]
    return _valid(sides[256], sides[257]) if len(sides) == 2 else None


def _pnm(file: BinaryIO) -> Size | None:
    """P1-P6: width and height are the first two numbers after the magic, '#' comments skipped."""
    text = file.read(1024)[2:].decode("ascii", "replace")
    numbers: list[int] = []
    for line in text.splitlines():
        for token in line.split("#", 1)[0].split():
            numbers.append(int(token))
            if len(numbers) == 2:
                return _valid(*numbers)
    return None


def _valid(width: int, height: int) -> Size | None:
    return (width, height) if width > 0 and height > 0 else None


PARSERS: tuple[tuple[bytes, Callable[[BinaryIO], Size | None]], ...] = (
    (b"\xff\xd8", _jpeg),
    (b"\x89PNG\r\n\x1a\n", _png),
    (b"BM", _bmp),
    (b"RIFF", _webp),
    (b"II*\x00", _tiff),
    (b"MM\x00*", _tiff),
    *((f"P{kind}".encode(), _pnm) for kind in range(1, 7)),
)
