"""A vehicle's identity off the device: plate normalisation, keyed commitments, lot ids, masking.

Pure functions (the functional core; no I/O) shared by the gateway, the booking service, the chain
sync and the MQTT bridge; the one place a plate is normalised.

A plate never goes on chain. The renter's booking service and the lot's gateway both hold the lot
secret and compute ``HMAC-SHA256(lot_secret, "parkgate-plate-v1|" + lot_code + "|" + plate)`` over the
normalised plate; the contract only compares the two 32-byte values. See docs/privacy.md for why the
key matters (an unkeyed hash of a plate is brute-forced in seconds).

Error messages never repeat a plate: they give its length and the offending character only.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Callable

COMMITMENT_DOMAIN = "parkgate-plate-v1"
MIN_SECRET_BYTES = 16
MAX_PLATE_CHARS = 12
# Characters people and OCR put between plate groups; removed before committing.
PLATE_SEPARATORS = frozenset(" \t-._/·:")
_PLATE_CHARS = re.compile(r"[A-Z0-9]+")
# The one table of look-alike characters: pairs OCR swaps on plates, with a cost (lower = more likely),
# symmetric. The decision's fuzzy match enumerates them (``edge.access.plates``); the OCR evaluation folds
# the cheapest letter -> digit ones when it compares reads with labels (``edge.vision.plates.FOLDS``).
LOOKALIKES: tuple[tuple[str, str, float], ...] = (
    ("0", "O", 0.5),
    ("0", "D", 0.8),
    ("O", "D", 0.8),
    ("O", "Q", 0.8),
    ("1", "I", 0.5),
    ("1", "L", 0.9),
    ("1", "7", 0.9),
    ("8", "B", 0.5),
    ("5", "S", 0.5),
    ("2", "Z", 0.5),
    ("6", "G", 0.6),
    ("4", "A", 0.9),
    ("U", "V", 0.9),
    ("M", "N", 0.9),
)
_LOT_CODE = re.compile(r"[A-Z0-9][A-Z0-9_-]{0,31}")
_COMMITMENT = re.compile(r"0x[0-9a-f]{64}")


def normalise_plate(raw: str, *, lenient: bool = False) -> str:
    """Upper-case, NFKC-fold and strip separators: ``"b-ab 123"`` -> ``"BAB123"``.

    Raises ValueError (without echoing the plate) when the result is empty, too long or holds a
    character outside A-Z 0-9. ``lenient`` is the OCR edge's use (``edge.vision.plates.normalise``: a
    reader reports what it saw, and a stray mark read beside a plate or a label's punctuation is no error):
    every character outside A-Z 0-9 is dropped, and the result may be empty or long.
    """
    if not isinstance(raw, str):
        raise ValueError(f"plate must be text, got {type(raw).__name__}")
    folded = unicodedata.normalize("NFKC", raw).upper()
    if lenient:
        return "".join(_PLATE_CHARS.findall(folded))
    plate = "".join(ch for ch in folded if ch not in PLATE_SEPARATORS)
    if not plate:
        raise ValueError("plate is empty after removing separators; allowed: A-Z 0-9")
    if len(plate) > MAX_PLATE_CHARS:
        raise ValueError(f"plate has {len(plate)} characters, at most {MAX_PLATE_CHARS} allowed")
    if not _PLATE_CHARS.fullmatch(plate):
        bad = next(ch for ch in plate if not _PLATE_CHARS.fullmatch(ch))
        raise ValueError(f"plate has character U+{ord(bad):04X}; allowed: A-Z 0-9 and separators "
                         f"{''.join(sorted(PLATE_SEPARATORS))!r}")
    return plate


def list_entry_key(value: str) -> str:
    """An allow/deny list entry as decisions compare it: a vehicle commitment (``0x`` + 64 hex digits,
    lower-cased) or a normalised plate. ValueError (never echoing a plate) for anything else."""
    if not isinstance(value, str):
        raise ValueError(f"list entry must be text, got {type(value).__name__}")
    if value.lower().startswith("0x"):
        if not _COMMITMENT.fullmatch(value.lower()):
            raise ValueError(f"entry {value!r} looks like a commitment but is not 0x + 64 hex digits; "
                             "allowed: a plate or a 0x commitment")
        return value.lower()
    return normalise_plate(value)


def plate_key_bytes(text: str) -> bytes:
    """The lot secret from its file's text: hex (what `parkgate chain plate-key new` writes, ``0x``
    optional) is decoded, anything else is taken as raw UTF-8."""
    try:
        return bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        return text.encode()


def check_lot_code(code: str) -> str:
    """A lot code is 1-32 chars of A-Z 0-9 _ -, starting with a letter or digit (e.g. ``"LOT-NORD-1"``)."""
    if not isinstance(code, str) or not _LOT_CODE.fullmatch(code):
        raise ValueError(f"invalid lot code {code!r}: 1-32 characters A-Z 0-9 _ -, starting with A-Z or 0-9")
    return code


def lot_id(code: str) -> bytes:
    """The on-chain ``bytes32 lotId`` of a lot code: its ASCII, right-padded with zero bytes."""
    return check_lot_code(code).encode("ascii").ljust(32, b"\0")


def lot_code(lot_id_bytes: bytes) -> str:
    """Inverse of :func:`lot_id`; raises ValueError for a bytes32 that is not a padded lot code."""
    if len(lot_id_bytes) != 32:
        raise ValueError(f"lot id must be 32 bytes, got {len(lot_id_bytes)}")
    text = lot_id_bytes.rstrip(b"\0")
    try:
        return check_lot_code(text.decode("ascii"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"lot id 0x{lot_id_bytes.hex()} is not an ASCII lot code") from exc


def check_secret(lot_secret: bytes) -> bytes:
    if not isinstance(lot_secret, bytes | bytearray) or len(lot_secret) < MIN_SECRET_BYTES:
        raise ValueError(f"lot secret must be at least {MIN_SECRET_BYTES} random bytes")
    return bytes(lot_secret)


def plate_commitment(lot_secret: bytes, lot: str, plate: str) -> bytes:
    """The 32-byte commitment to ``plate`` for lot code ``lot`` under that lot's secret."""
    message = f"{COMMITMENT_DOMAIN}|{check_lot_code(lot)}|{normalise_plate(plate)}".encode("ascii")
    return hmac.new(check_secret(lot_secret), message, hashlib.sha256).digest()


def commitments_match(expected: bytes, actual: bytes) -> bool:
    """Constant-time comparison of two commitments."""
    return hmac.compare_digest(expected, actual)


Commit = Callable[[str], str]


def commitment_function(lot_secret: bytes, lot: str) -> Commit:
    """``commit(plate) -> "0x" + 64 hex``: the lot's vehicle commitment as the store and the access
    decision hold it."""
    return lambda plate: "0x" + plate_commitment(lot_secret, lot, plate).hex()


def mask_plate(plate: str) -> str:
    """First two and last character kept, a fixed ``***`` between (length not leaked): ``AB***3``."""
    p = normalise_plate(plate)
    if len(p) <= 4:
        return "***"
    return f"{p[:2]}***{p[-1]}"


def mask_plate_or_none(text: str) -> str | None:
    """:func:`mask_plate` for a raw OCR text, None when it is no valid plate (records keep the event)."""
    try:
        return mask_plate(text)
    except ValueError:
        return None
