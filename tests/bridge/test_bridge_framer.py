"""Framer: COBS + CRC16 frames survive any chunking, and garbage is counted, never fatal."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.framer import (
    MAX_PAYLOAD,
    Frame,
    FrameDecoder,
    FrameError,
    cobs_decode,
    cobs_encode,
    crc16,
    encode_frame,
    parse_frame,
)

frames = st.builds(Frame, seq=st.integers(0, 255), msg_type=st.integers(0, 255),
                   payload=st.binary(max_size=MAX_PAYLOAD), version=st.integers(0, 255))


def reference_crc16_ccitt_false(data: bytes) -> int:
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def test_crc16_is_ccitt_false() -> None:
    assert crc16(b"123456789") == 0x29B1  # the catalogue check value of CRC-16/CCITT-FALSE


@settings(deadline=None)  # shared 2-core CI box: no per-example time limit
@given(st.binary(max_size=300))
def test_crc16_matches_bitwise_reference(data: bytes) -> None:
    assert crc16(data) == reference_crc16_ccitt_false(data)


@settings(deadline=None)  # shared 2-core CI box: no per-example time limit
@given(st.binary(max_size=600))
def test_cobs_round_trip_and_no_zero_bytes(data: bytes) -> None:
    encoded = cobs_encode(data)
    assert 0 not in encoded
    assert cobs_decode(encoded) == data


@settings(deadline=None)  # shared 2-core CI box: no per-example time limit
@given(frames)
def test_frame_round_trip(frame: Frame) -> None:
    wire = encode_frame(frame)
    assert wire.endswith(b"\x00") and 0 not in wire[:-1]
    assert parse_frame(wire[:-1]) == frame


@settings(deadline=None)  # shared 2-core CI box: no per-example time limit
@given(st.lists(frames, max_size=8), st.data())
def test_decoder_handles_any_chunking(sent: list[Frame], data: st.DataObject) -> None:
    stream = b"".join(encode_frame(f) for f in sent)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    decoder, got = FrameDecoder(), []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        got += decoder.feed(stream[start:end])
    assert got == sent
    assert decoder.stats.dropped() == 0


@settings(deadline=None)  # shared 2-core CI box: no per-example time limit
@given(st.binary(max_size=200), frames)
def test_decoder_resyncs_after_garbage(garbage: bytes, frame: Frame) -> None:
    decoder = FrameDecoder()
    decoder.feed(garbage + b"\x00")
    assert decoder.feed(encode_frame(frame)) == [frame]


def test_every_single_bit_error_is_dropped_and_counted() -> None:
    wire = encode_frame(Frame(seq=7, msg_type=1, payload=b"\x01\xf4"))
    for index in range(len(wire)):
        for bit in range(8):
            corrupted = bytearray(wire)
            corrupted[index] ^= 1 << bit
            decoder = FrameDecoder()
            assert decoder.feed(bytes(corrupted) + b"\x00") == [], (index, bit)
            assert decoder.stats.dropped() >= 1


def test_overrun_without_delimiter_is_dropped_then_resyncs() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(b"\x55" * 1000) == []
    assert decoder.stats.overruns == 1
    frame = Frame(seq=1, msg_type=6)
    assert decoder.feed(b"\x00" + encode_frame(frame)) == [frame]


@pytest.mark.parametrize(("encoded", "reason"), [
    (b"\x01\x01", "shorter than the minimum"),
    (b"\x09\x01\x02\x03", "runs past the frame end"),
    (cobs_encode(b"\x01\x02\x06\x05" + crc16(b"\x01\x02\x06\x05").to_bytes(2, "big")), "length field"),
    (cobs_encode(b"\x01\x02\x06\x00\xaa\xbb"), "CRC mismatch"),
])
def test_parse_errors_name_the_problem(encoded: bytes, reason: str) -> None:
    with pytest.raises(FrameError, match=reason):
        parse_frame(encoded)


def test_frame_rejects_oversized_payload() -> None:
    with pytest.raises(FrameError, match="exceeds the maximum 32"):
        Frame(seq=0, msg_type=1, payload=bytes(33))
