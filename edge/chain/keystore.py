"""The gateway's signing key: an encrypted JSON keystore (eth-account, Web3 Secret Storage v3).

The password comes from a file (``chain.password_file``; under systemd a credential such as
``/run/credentials/parkgate.service/keystore-password``) and is never logged or put in an error.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from eth_account import Account
from eth_account.signers.local import LocalAccount

from edge.config import read_secret

# scrypt n=2**18 is eth-account's default (about 1 s and 256 MiB on a Pi: paid once at start).
Kdf = Literal["pbkdf2", "scrypt"]
DEFAULT_KDF: Kdf = "scrypt"


class KeystoreError(Exception):
    """The keystore cannot be read, created or decrypted; the message names the file, not the secret."""


def read_password(path: Path | None, key: str = "chain.password_file") -> str:
    return read_secret(path, key)


def create_keystore(path: Path, password: str, private_key: bytes | str | None = None,
                    kdf: Kdf = DEFAULT_KDF, iterations: int | None = None) -> str:
    """Write a new keystore (a fresh random key unless ``private_key`` is given); returns the address.

    Refuses to overwrite an existing file. The file is created with mode 0600.
    """
    if path.exists():
        raise KeystoreError(f"keystore {path} already exists; refusing to overwrite a key")
    account = Account.from_key(private_key) if private_key is not None else Account.create()
    blob = Account.encrypt(account.key, password, kdf=kdf, iterations=iterations)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(blob, handle)
    return account.address


def keystore_address(path: Path) -> str:
    """The address stored (unencrypted) in the keystore, without decrypting it."""
    try:
        address = json.loads(path.read_text(encoding="utf-8"))["address"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KeystoreError(f"keystore {path} is not a readable JSON keystore: "
                            f"{exc.__class__.__name__}") from None
    return "0x" + str(address).removeprefix("0x")


def load_account(path: Path, password: str) -> LocalAccount:
    """Decrypt the keystore. A wrong password or a damaged file gives a KeystoreError naming the file."""
    try:
        blob = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise KeystoreError(f"keystore {path} is not a readable JSON keystore: "
                            f"{exc.__class__.__name__}") from None
    try:
        key = Account.decrypt(blob, password)
    except ValueError:
        raise KeystoreError(f"keystore {path}: wrong password or damaged file (MAC mismatch)") from None
    except Exception as exc:  # noqa: BLE001 - malformed keystore fields: report the file, not the content
        raise KeystoreError(f"keystore {path}: malformed keystore ({exc.__class__.__name__})") from None
    return Account.from_key(key)
