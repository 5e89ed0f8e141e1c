"""Console users: ``<state_dir>/console_users.json``, mode 0600, argon2id hashes (argon2-cffi).

Written atomically (a temporary file renamed over the old one), read at every login, so
`parkgate console user add|remove` applies to a running console without a restart. There is no default
user and no default password: the console refuses every login until a user is added."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from edge.console.auth import ROLES

USERS_FILE = "console_users.json"
NAME_RE = re.compile(r"[a-z][a-z0-9._-]{0,31}")
MIN_PASSWORD = 10
MAX_PASSWORD = 256
_HASHER = PasswordHasher()  # argon2id, RFC 9106 low-memory profile: 64 MiB per hash
# One hash at a time: a burst of logins costs 64 MiB, not 64 MiB per server thread.
_ONE_AT_A_TIME = threading.Lock()
# Verified when the user is unknown, so that a wrong name costs as long as a wrong password.
_DUMMY_HASH = _HASHER.hash("parkgate-console-no-such-user")


class UsersError(ValueError):
    """A bad name, role, password or users file: the message names it and what is allowed."""


@dataclass(frozen=True)
class User:
    name: str
    role: str
    password_hash: str


def password_mark(user: User) -> str:
    """A fingerprint of the user's password hash, kept in their sessions: a new password (a new salt,
    so a new hash, even for the same password) no longer matches it and ends them. A digest, so that the
    hash itself is not copied into every session."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:32]


def users_path(state_dir: Path) -> Path:
    return state_dir / USERS_FILE


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise UsersError(f"user name {name!r} not allowed; allowed: 1-32 of a-z 0-9 . _ - "
                         "starting with a letter")
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UsersError(f"role {role!r} unknown; allowed: {', '.join(ROLES)}")
    return role


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise UsersError(f"password has {len(password)} characters; allowed: {MIN_PASSWORD}..{MAX_PASSWORD}")
    if not password.isprintable():
        raise UsersError("password must be printable characters (no control characters or newlines)")
    return password


def load_users(path: Path) -> dict[str, User]:
    """The users in the file; {} when there is none; UsersError naming the file when it is damaged."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise UsersError(f"cannot read console users from {path}: {exc}") from None
    try:
        return {name: User(check_name(name), check_role(entry["role"]), str(entry["hash"]))
                for name, entry in data["users"].items()}
    except (KeyError, TypeError, AttributeError, UsersError) as exc:
        raise UsersError(f"{path} is not a console users file ({exc}); remove it and add the users again") \
            from None


def save_users(path: Path, users: dict[str, User]) -> None:
    data = {"users": {u.name: {"role": u.role, "hash": u.password_hash} for u in users.values()}}
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=1, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def add_user(path: Path, name: str, role: str, password: str) -> User:
    """Add a user or replace an existing user's role and password."""
    user = User(check_name(name), check_role(role), _HASHER.hash(check_password(password)))
    users = load_users(path)
    users[name] = user
    save_users(path, users)
    return user


def remove_user(path: Path, name: str) -> bool:
    users = load_users(path)
    if users.pop(name, None) is None:
        return False
    save_users(path, users)
    return True


def authenticate(path: Path, name: str, password: str) -> User | None:
    """The user when the password matches, else None (a damaged users file: UsersError)."""
    user = load_users(path).get(name)
    try:
        with _ONE_AT_A_TIME:
            _HASHER.verify(user.password_hash if user else _DUMMY_HASH, password[:MAX_PASSWORD])
    except (VerificationError, InvalidHashError):
        return None
    return user
