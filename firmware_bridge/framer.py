"""Framer: bytes on the wire <-> :class:`Frame` (layer 1 of the parkgate gate protocol).

Wire format (docs/gate-protocol.md, section "Framing")::

    COBS( version:u8 | seq:u8 | type:u8 | length:u8 | payload[length] | crc16:u16be ) | 0x00

COBS removes every 0x00 from the frame, so 0x00 only ever marks a frame end: a receiver that
starts mid-stream or sees garbage resynchronises at the next 0x00 without any timing rule.
CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no xor-out) covers version..payload.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass, field

from firmware_bridge.errors import GateError

PROTOCOL_VERSION = 1
DELIMITER = 0x00
HEADER_LEN = 4
CRC_LEN = 2
MAX_PAYLOAD = 32
MAX_RAW_LEN = HEADER_LEN + MAX_PAYLOAD + CRC_LEN
# COBS adds one byte per 254 bytes (plus one); anything longer than this without a delimiter is garbage.
MAX_ENCODED_LEN = MAX_RAW_LEN + 2


class FrameError(GateError, ValueError):
    """A byte sequence between two delimiters is not a valid frame (the reason says why)."""


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (binascii.crc_hqx is exactly this algorithm with init 0xFFFF)."""
    return binascii.crc_hqx(data, 0xFFFF)


def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing: the result contains no 0x00 byte."""
    out = bytearray()
    block = bytearray()
    for byte in data:
        if byte == 0:
            out.append(len(block) + 1)
            out += block
            block.clear()
        else:
            block.append(byte)
            if len(block) == 254:
                out.append(255)
                out += block
                block.clear()
    out.append(len(block) + 1)
    out += block
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Inverse of :func:`cobs_encode`; raises FrameError on a stuffing code that points past the end."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        if code == 0:
            raise FrameError("COBS: zero byte inside a frame")
        end = i + code
        if end > n:
            raise FrameError(f"COBS: block length {code} runs past the frame end ({n} bytes)")
        out += data[i + 1:end]
        i = end
        if code < 255 and i < n:
            out.append(0)
    return bytes(out)


@dataclass(frozen=True)
class Frame:
    """One protocol frame; ``payload`` is interpreted by the codec according to ``msg_type``."""

    seq: int
    msg_type: int
    payload: bytes = b""
    version: int = PROTOCOL_VERSION

    def __post_init__(self) -> None:
        for name in ("seq", "msg_type", "version"):
            value = getattr(self, name)
            if not 0 <= value <= 255:
                raise FrameError(f"frame {name}={value} out of range 0..255")
        if len(self.payload) > MAX_PAYLOAD:
            raise FrameError(f"payload of {len(self.payload)} bytes exceeds the maximum {MAX_PAYLOAD}")


def encode_frame(frame: Frame) -> bytes:
    """Frame -> bytes ready for the wire, including the trailing delimiter."""
    body = bytes((frame.version, frame.seq, frame.msg_type, len(frame.payload))) + frame.payload
    return cobs_encode(body + crc16(body).to_bytes(2, "big")) + bytes((DELIMITER,))


def parse_frame(encoded: bytes) -> Frame:
    """COBS-encoded bytes between delimiters -> Frame; raises FrameError naming what is wrong."""
    raw = cobs_decode(encoded)
    if len(raw) < HEADER_LEN + CRC_LEN:
        raise FrameError(f"frame of {len(raw)} bytes is shorter than the minimum {HEADER_LEN + CRC_LEN}")
    body, received = raw[:-CRC_LEN], int.from_bytes(raw[-CRC_LEN:], "big")
    if crc16(body) != received:
        raise FrameError(f"CRC mismatch: computed 0x{crc16(body):04x}, frame says 0x{received:04x}")
    version, seq, msg_type, length = body[:HEADER_LEN]
    if length != len(body) - HEADER_LEN:
        raise FrameError(f"length field says {length} payload bytes, frame carries {len(body) - HEADER_LEN}")
    return Frame(seq=seq, msg_type=msg_type, payload=bytes(body[HEADER_LEN:]), version=version)


@dataclass
class DecoderStats:
    """Counters a receiver exposes so dropped input is visible, never silent."""

    frames: int = 0
    crc_errors: int = 0
    malformed: int = 0
    overruns: int = 0
    bytes_dropped: int = 0

    def dropped(self) -> int:
        return self.crc_errors + self.malformed + self.overruns


@dataclass
class FrameDecoder:
    """Incremental decoder: feed any chunking of the byte stream, get whole valid frames back.

    Garbage and corrupted frames are counted in ``stats`` and skipped; decoding resumes at the next
    delimiter. A run of more than MAX_ENCODED_LEN bytes without a delimiter is discarded as an overrun.
    """

    stats: DecoderStats = field(default_factory=DecoderStats)
    _buffer: bytearray = field(default_factory=bytearray)
    _skipping: bool = False

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        start = 0
        while True:
            end = data.find(DELIMITER, start)
            if end < 0:
                self._append(data[start:])
                return frames
            self._append(data[start:end])
            frame = self._finish()
            if frame is not None:
                frames.append(frame)
            start = end + 1

    def _append(self, chunk: bytes) -> None:
        if self._skipping:
            self.stats.bytes_dropped += len(chunk)
            return
        self._buffer += chunk
        if len(self._buffer) > MAX_ENCODED_LEN:
            self.stats.overruns += 1
            self.stats.bytes_dropped += len(self._buffer)
            self._buffer.clear()
            self._skipping = True

    def _finish(self) -> Frame | None:
        encoded = bytes(self._buffer)
        self._buffer.clear()
        if self._skipping:
            self._skipping = False
            return None
        if not encoded:
            return None  # back-to-back delimiters are legal idle fill
        try:
            frame = parse_frame(encoded)
        except FrameError as exc:
            if str(exc).startswith("CRC"):
                self.stats.crc_errors += 1
            else:
                self.stats.malformed += 1
            self.stats.bytes_dropped += len(encoded) + 1
            return None
        self.stats.frames += 1
        return frame
