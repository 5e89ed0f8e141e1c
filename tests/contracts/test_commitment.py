"""Unit and property tests of the pure plate-commitment and lot-id functions."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.chain.commitment import (
    commitments_match,
    lot_code,
    lot_id,
    normalise_plate,
    plate_commitment,
)

SECRET = b"0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(("raw", "expected"), [
    ("B-AB 1234", "BAB1234"), ("b ab-1234", "BAB1234"), ("M·XY.9", "MXY9"), ("ｂａｂ１２３", "BAB123"),
    ("  hh/ab_12  ", "HHAB12"),
])
def test_normalise_plate_folds_case_width_and_separators(raw: str, expected: str) -> None:
    assert normalise_plate(raw) == expected


@pytest.mark.parametrize(("raw", "message"), [
    ("", "empty"), (" - . ", "empty"), ("ABCDEFGHIJKLM", "at most 12"), ("BÄ 12", r"U\+00C4"),
    ("AB;1", r"U\+003B"),
])
def test_bad_plates_are_refused_without_echoing_the_plate(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        normalise_plate(raw)
    if len(raw.strip(" -.")) > 3:
        assert raw not in str(info.value)


def test_commitment_is_the_documented_hmac() -> None:
    expected = hmac.new(SECRET, b"parkgate-plate-v1|LOT-1|BAB1234", hashlib.sha256).digest()
    assert plate_commitment(SECRET, "LOT-1", "b-ab 1234") == expected
    assert len(expected) == 32


def test_commitment_depends_on_secret_lot_and_plate() -> None:
    base = plate_commitment(SECRET, "LOT-1", "BAB1234")
    assert plate_commitment(SECRET[::-1], "LOT-1", "BAB1234") != base
    assert plate_commitment(SECRET, "LOT-2", "BAB1234") != base
    assert plate_commitment(SECRET, "LOT-1", "BAB1235") != base
    assert commitments_match(base, plate_commitment(SECRET, "LOT-1", "B AB 1234"))


def test_short_secret_and_bad_lot_code_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        plate_commitment(b"short", "LOT-1", "BAB1234")
    with pytest.raises(ValueError, match="invalid lot code"):
        plate_commitment(SECRET, "lot 1", "BAB1234")
    with pytest.raises(ValueError, match="invalid lot code"):
        lot_id("X" * 33)


def test_lot_id_round_trip_and_bad_bytes() -> None:
    assert lot_id("LOT-NORD-1") == b"LOT-NORD-1" + b"\0" * 22
    assert lot_code(lot_id("LOT-NORD-1")) == "LOT-NORD-1"
    with pytest.raises(ValueError, match="32 bytes"):
        lot_code(b"LOT")
    with pytest.raises(ValueError, match="not an ASCII lot code"):
        lot_code(b"\xff" * 32)
    with pytest.raises(ValueError, match="invalid lot code"):
        lot_code(b"\0" * 32)


@given(st.text(max_size=40))
def test_normalise_plate_never_crashes_and_is_idempotent(raw: str) -> None:
    try:
        plate = normalise_plate(raw)
    except ValueError:
        return
    assert normalise_plate(plate) == plate
    assert plate.isascii() and plate.isalnum() and plate == plate.upper()


@given(st.binary(min_size=32, max_size=32))
def test_lot_code_of_arbitrary_bytes32_is_a_clear_error_or_round_trips(raw: bytes) -> None:
    try:
        code = lot_code(raw)
    except ValueError as exc:
        assert "lot" in str(exc)
        return
    assert lot_id(code) == raw
