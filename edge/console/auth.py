"""Sessions, CSRF tokens and the login rate limit: plain data and an injected clock, no I/O.

Sessions live in the console's memory only (a restart logs everyone out): the cookie holds a random
token, never the user's name or role, so nothing in it can be forged or replayed after logout."""

from __future__ import annotations

import hmac
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

ROLES = ("operator", "viewer")  # viewer: read-only
MAX_SESSIONS = 256  # live sessions at once: bounded memory whatever a client does
MAX_USER_SESSIONS = 8  # a user's own oldest session is dropped beyond this (never another user's)
MAX_TRACKED = 4096  # addresses and user names the rate limit remembers at once


def new_token() -> str:
    return secrets.token_urlsafe(32)


def same_token(given: str | None, expected: str) -> bool:
    """Constant-time comparison; a missing token never matches."""
    return bool(given) and hmac.compare_digest(str(given).encode(), expected.encode())


@dataclass(frozen=True)
class Session:
    user: str
    role: str
    csrf: str
    expires_at: float
    password_mark: str = ""  # a fingerprint of the user's password hash at login (users.password_mark)

    @property
    def can_act(self) -> bool:
        return self.role == "operator"


class SessionsFull(RuntimeError):
    """Every session slot is held by other users' live sessions."""


@dataclass
class Sessions:
    """Logged-in sessions by cookie token, expiring ``lifetime_s`` after login."""

    lifetime_s: float
    clock: Callable[[], float]
    _by_token: dict[str, Session] = field(default_factory=dict)

    def login(self, user: str, role: str, password_mark: str = "") -> tuple[str, Session]:
        """A new session of ``user``: the user's own oldest goes beyond MAX_USER_SESSIONS (or when the
        table is full); SessionsFull
        when MAX_SESSIONS live sessions of other users are held (no one can log anyone else out)."""
        self._prune()
        mine = [t for t, s in self._by_token.items() if s.user == user]
        while mine and (len(mine) >= MAX_USER_SESSIONS or len(self._by_token) >= MAX_SESSIONS):
            del self._by_token[mine.pop(0)]  # the user's own oldest
        if len(self._by_token) >= MAX_SESSIONS:
            raise SessionsFull(f"the console holds {MAX_SESSIONS} live sessions of other users: try again "
                               "when some log out or expire")
        token = new_token()
        session = Session(user, role, new_token(), self.clock() + self.lifetime_s, password_mark)
        self._by_token[token] = session
        return token, session

    def get(self, token: str | None) -> Session | None:
        session = self._by_token.get(token or "")
        if session is None:
            return None
        if session.expires_at <= self.clock():
            self._by_token.pop(token or "", None)
            return None
        return session

    def logout(self, token: str | None) -> None:
        self._by_token.pop(token or "", None)

    def drop_user(self, user: str) -> None:
        """End every session of a user (removed, role or password changed)."""
        for token in [t for t, s in self._by_token.items() if s.user == user]:
            del self._by_token[token]

    def _prune(self) -> None:
        now = self.clock()
        for token in [t for t, s in self._by_token.items() if s.expires_at <= now]:
            del self._by_token[token]


SHARED_BUDGET = 10  # × attempts: failures per user name (any address) and per address (any user)
DEVICE_S = 30 * 86_400  # a browser that logged in as a user is known to the console this long


@dataclass
class LoginLimit:
    """At most ``attempts`` failed logins per user name from one address within ``window_s``, and
    ``attempts`` × SHARED_BUDGET per user name from all addresses and per address for all user names;
    beyond that a login is refused without looking at the password, until the oldest failure leaves the
    window. No one else can lock a user out with a few failures: that takes SHARED_BUDGET times as many,
    and a browser that logged in as that user before (its ``device`` token, from ``remember``) is
    counted on its own, ``attempts`` per window, whatever failures come from elsewhere. Success does not
    reset a count (an attacker who knows one password must not refill his budget)."""

    attempts: int
    window_s: float
    clock: Callable[[], float]
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _devices: dict[str, tuple[str, float]] = field(default_factory=dict)  # token: (user name, expiry)

    def remember(self, user: str) -> str:
        """A new device token for a browser that just logged in as ``user``."""
        now = self.clock()
        for token in [t for t, (_, until) in self._devices.items() if until <= now]:
            del self._devices[token]
        while len(self._devices) >= MAX_TRACKED:
            self._devices.pop(next(iter(self._devices)))
        token = new_token()
        self._devices[token] = (user.lower(), now + DEVICE_S)
        return token

    def retry_after(self, address: str, user: str, device: str | None = None) -> float:
        """Seconds until a login for ``user`` from ``address`` (a browser with ``device``) may be tried;
        0: now."""
        now = self.clock()
        return max(self._wait(key, limit, now) for key, limit in self._keys(address, user, device))

    def begin(self, address: str, user: str, device: str | None = None) -> float:
        """``retry_after``, and when it is 0 the attempt counted as a failure at once (taken back by
        ``take_back``). Checking and counting in one step, with no await between, is what keeps logins
        sent together from all passing the check while their passwords are being verified."""
        wait = self.retry_after(address, user, device)
        if wait <= 0:
            self.failed(address, user, device)
        return wait

    def take_back(self, address: str, user: str, device: str | None = None) -> None:
        """Take back the failure ``begin`` counted, for a login that did not fail: its password was right
        (a success is neither a failure nor a reset), or it could not be checked. The newest failure
        goes: only their count and the oldest matter."""
        for key, _ in self._keys(address, user, device):
            times = self._failures.get(key)
            if times:
                times.pop()

    def failed(self, address: str, user: str, device: str | None = None) -> None:
        now = self.clock()
        if len(self._failures) >= MAX_TRACKED:
            self._prune(now)
        for key, limit in self._keys(address, user, device):
            if key not in self._failures and len(self._failures) >= MAX_TRACKED:
                self._failures.pop(next(iter(self._failures)))
            times = self._failures.setdefault(key, deque(maxlen=limit))
            times.append(now)

    def _keys(self, address: str, user: str, device: str | None) -> list[tuple[str, int]]:
        """The counts a login is judged by, each with its limit: the browser's own when it logged in as
        ``user`` before (any case), else its user name from its address, its user name, its address."""
        name = user.lower()
        known = self._devices.get(device or "")
        if known is not None and known[0] == name and known[1] > self.clock():
            return [(f"device:{device}", self.attempts)]
        shared = self.attempts * SHARED_BUDGET
        return [(f"pair:{address} {name}", self.attempts), (f"user:{name}", shared),
                (f"addr:{address}", shared)]

    def _wait(self, key: str, limit: int, now: float) -> float:
        times = self._failures.get(key)
        if not times or len(times) < limit:
            return 0.0
        return max(0.0, times[0] + self.window_s - now)

    def _prune(self, now: float) -> None:
        for key in [k for k, t in self._failures.items() if not t or t[-1] + self.window_s <= now]:
            del self._failures[key]
