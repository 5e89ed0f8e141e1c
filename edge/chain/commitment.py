"""Plate commitments and lot ids as the chain uses them: re-exported from :mod:`edge.identity`."""

from edge.identity import (
    COMMITMENT_DOMAIN,
    MAX_PLATE_CHARS,
    MIN_SECRET_BYTES,
    PLATE_SEPARATORS,
    check_lot_code,
    check_secret,
    commitments_match,
    lot_code,
    lot_id,
    normalise_plate,
    plate_commitment,
)

__all__ = [
    "COMMITMENT_DOMAIN", "MAX_PLATE_CHARS", "MIN_SECRET_BYTES", "PLATE_SEPARATORS", "check_lot_code",
    "check_secret", "commitments_match", "lot_code", "lot_id", "normalise_plate", "plate_commitment",
]
