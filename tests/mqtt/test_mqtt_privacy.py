"""Plate privacy: hash (default), mask, plain; redaction of payloads before they are published."""

from __future__ import annotations

import pytest

from edge.mqtt.privacy import hash_plate, mask_plate, present_plate, redact_payload

KEY = bytes(range(32))


def test_mask_keeps_two_first_and_last_with_fixed_stars() -> None:
    assert mask_plate("ab-12 3") == "AB***3"
    assert mask_plate("AB1234567") == "AB***7"  # length is not leaked
    assert mask_plate("AB12") == "***"


def test_hash_is_keyed_normalised_and_short() -> None:
    h = hash_plate("AB 123", KEY)
    assert h == hash_plate("ab-123", KEY)
    assert len(h) == 16 and int(h, 16) >= 0
    assert h != hash_plate("AB 123", bytes(32))
    assert h != hash_plate("AB 124", KEY)
    assert "AB123" not in h


def test_present_plate_modes_and_bad_mode() -> None:
    assert present_plate("ab 123", "plain", KEY) == "AB123"
    assert present_plate("ab 123", "mask", KEY) == "AB***3"
    assert present_plate("ab 123", "hash", KEY) == hash_plate("AB123", KEY)
    with pytest.raises(ValueError, match="plate privacy 'rot13' is not one of hash, mask, plain"):
        present_plate("AB123", "rot13", KEY)


def test_redact_renames_the_field_so_a_hash_is_never_read_as_a_plate() -> None:
    read = {"lane": "in-1", "plate": "AB123", "confidence": 0.9}
    assert redact_payload(read, "hash", KEY) == {"lane": "in-1", "confidence": 0.9,
                                                 "plate_hash": hash_plate("AB123", KEY)}
    assert redact_payload(read, "mask", KEY)["plate_masked"] == "AB***3"
    assert redact_payload(read, "plain", KEY)["plate"] == "AB123"
    assert read["plate"] == "AB123"  # input untouched


def test_redact_hash_mode_drops_stored_mask_and_keeps_commitment() -> None:
    event = {"event_id": "e" * 26, "plate_masked": "AB***3", "plate_commitment": "0x" + "ab" * 32}
    out = redact_payload(event, "hash", KEY)
    assert "plate_masked" not in out and out["plate_commitment"] == event["plate_commitment"]
    assert redact_payload(event, "mask", KEY)["plate_masked"] == "AB***3"


@pytest.mark.parametrize("bad", [None, 12345, "", "AB#12", "X" * 40])
def test_redact_never_publishes_a_bad_plate_as_it_came(bad: object) -> None:
    out = redact_payload({"plate": bad}, "plain", KEY)
    assert out == {"plate": None}


def test_redact_rejects_unknown_mode() -> None:
    with pytest.raises(ValueError, match="plate privacy"):
        redact_payload({"lane": "x"}, "none", KEY)
