"""The console's Host check against DNS rebinding: a page elsewhere that points its own name at 127.0.0.1
must not reach a console tunnelled to the installer's browser. Only requests whose Host names the
console are answered (any port: tunnels change it): ``localhost``, ``127.0.0.1``, ``[::1]``, the
configured ``host`` when it is a specific address, and ``[console] allowed_hosts``. The check itself is
Starlette's ``TrustedHostMiddleware`` (400 ``Invalid host header``; no www redirect); this module says
which names it takes and logs what it refuses."""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Sequence

from starlette.datastructures import Headers
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from edge.config import ConsoleConfig
from edge.throttle import Throttle

log = logging.getLogger(__name__)
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
PASSED = "parkgate.host_passed"  # set in the scope of a request the check let through
LOG_BURST = 5  # refusal lines logged at once; then one a minute, each with the count it stands for
LOG_EVERY_S = 60.0


def host_form(name: str) -> str:
    """A name as a Host header carries it (without the port): lower case, an IPv6 address bracketed."""
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return name.lower()
    return f"[{address.compressed}]" if address.version == 6 else address.compressed


def listens_everywhere(host: str) -> bool:
    """Whether ``host`` is 0.0.0.0 or :: (every interface: no one name of its own)."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def accepted_hosts(console: ConsoleConfig) -> tuple[str, ...]:
    """The Host names the console answers (pure), as ``TrustedHostMiddleware`` compares them."""
    own = () if listens_everywhere(console.host) else (console.host,)
    return tuple(dict.fromkeys(host_form(name) for name in (*LOOPBACK_NAMES, *own, *console.allowed_hosts)))


def host_warning(console: ConsoleConfig) -> str | None:
    """What the console says at start when it listens on every interface with no ``allowed_hosts``: a
    browser on the LAN is refused whatever name or address it uses (pure)."""
    if not listens_everywhere(console.host) or console.allowed_hosts:
        return None
    return (f"the console listens on {console.host} (every interface) but answers only requests for "
            f"{', '.join(accepted_hosts(console))} (any port): a browser reaching it by another name or "
            "address gets 400 (Invalid host header). Add each name it is served under to [console] "
            'allowed_hosts, e.g. allowed_hosts = ["gate.example.lan", "192.168.1.20"]')


class HostCheck:
    """``TrustedHostMiddleware`` over ``app`` for ``hosts``, and a log line for what it refuses (at most
    LOG_BURST at once, then one each LOG_EVERY_S saying how many it stands for; a rebinding page may
    knock again and again). ``refused`` counts every refusal."""

    def __init__(self, app: ASGIApp, hosts: Sequence[str],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.hosts = tuple(hosts)
        self.refused = 0
        self._check = TrustedHostMiddleware(_marking(app), allowed_hosts=list(self.hosts), www_redirect=False)
        self._lines = Throttle(1 / LOG_EVERY_S, LOG_BURST, 1, clock)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._check(scope, receive, send)
        if scope["type"] in ("http", "websocket") and not scope.get(PASSED):
            self.refused += 1
            self._log(Headers(scope=scope).get("host"))

    def _log(self, host: str | None) -> None:
        if self._lines.allow("refused"):
            more = self._lines.take_refused("refused")
            log.warning("console: refused a request for Host %r (400)%s; it answers %s: if it is served "
                        "under that name, add it to [console] allowed_hosts", host,
                        f" and {more} more since the last such line" if more else "", ", ".join(self.hosts))


def _marking(app: ASGIApp) -> ASGIApp:
    """``app``, marking in the scope that the Host check let the request through."""
    async def passed(scope: Scope, receive: Receive, send: Send) -> None:
        scope[PASSED] = True
        await app(scope, receive, send)
    return passed
