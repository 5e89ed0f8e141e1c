"""How a licence plate appears in MQTT messages: hashed (default), masked, or plain.

Pure functions. ``hash`` is an HMAC-SHA256 of the normalised plate under a key derived from the
gateway key, truncated to 16 hex characters (64 bits): consumers can match the same plate across
events without learning it, and nobody without the key can brute-force the small plate space.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

from edge.identity import mask_plate, normalise_plate

PlatePrivacy = Literal["hash", "mask", "plain"]
PLATE_PRIVACY_MODES: tuple[str, ...] = ("hash", "mask", "plain")
HASH_HEX_CHARS = 16
PLATE_FIELD_BY_MODE: dict[str, str] = {"hash": "plate_hash", "mask": "plate_masked", "plain": "plate"}


def derive_key(master: bytes, purpose: str) -> bytes:
    """A sub-key for one purpose, so one gateway key file serves commands and plate hashing apart."""
    return hmac.new(master, b"parkgate/" + purpose.encode(), hashlib.sha256).digest()


def hash_plate(plate: str, key: bytes) -> str:
    digest = hmac.new(derive_key(key, "plate"), normalise_plate(plate).encode(), hashlib.sha256)
    return digest.hexdigest()[:HASH_HEX_CHARS]


def present_plate(plate: str, mode: str, key: bytes) -> str:
    """The plate as it may leave the gateway under ``mode``.

    Raises ValueError for an unknown mode or a string that cannot be a plate (see
    ``edge.identity.normalise_plate``, the one normalisation the gateway uses)."""
    if mode == "hash":
        return hash_plate(plate, key)
    if mode == "mask":
        return mask_plate(plate)
    if mode == "plain":
        return normalise_plate(plate)
    raise ValueError(f"plate privacy {mode!r} is not one of {', '.join(PLATE_PRIVACY_MODES)}")


def redact_payload(payload: dict, mode: str, key: bytes) -> dict:
    """A copy of ``payload`` fit to publish under ``mode``.

    A plaintext ``plate`` becomes ``plate_hash`` / ``plate_masked`` / ``plate`` so a consumer can
    never mistake a hash for a plate; one that is not a plate string becomes None (never published
    as it came). Under ``hash`` a ``plate_masked`` field (stored gate events carry one) is dropped
    too, since a mask still shows three characters. ``plate_commitment`` is kept: it is the keyed
    commitment the rental contract already holds publicly.
    """
    field = PLATE_FIELD_BY_MODE.get(mode)
    if field is None:
        raise ValueError(f"plate privacy {mode!r} is not one of {', '.join(PLATE_PRIVACY_MODES)}")
    out = dict(payload)
    if mode == "hash":
        out.pop("plate_masked", None)
    if "plate" not in out:
        return out
    plate = out.pop("plate")
    try:
        out[field] = present_plate(plate, mode, key) if isinstance(plate, str) else None
    except ValueError:
        out[field] = None
    return out
