"""Plate commitments and lot ids as the chain uses them: re-exported from :mod:`edge.identity`, and the
on-chain lot code of a gateway (here, not in :mod:`edge.chain.syncplan`: the daemon needs it at start and
must not load web3 for it when the chain is off)."""

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
    "chain_lot_code",
]


def chain_lot_code(gateway_lot_id: str) -> str:
    """The on-chain lot code of ``gateway.lot_id`` (the config already demands a lot code; upper-casing
    keeps older lower-case ids working: ``lot-1`` -> ``LOT-1``)."""
    return gateway_lot_id.upper().replace(".", "-")
