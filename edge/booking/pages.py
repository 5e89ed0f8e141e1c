"""The renter's and the owner's web pages: static files of this package (HTML, CSS and the wallet bundle
built from web/ by esbuild, see web/package.json), served with a strict Content-Security-Policy.

Nothing is fetched from elsewhere at run time: scripts, styles and data come from this service only
(``connect-src 'self'``). The pages talk to the person's wallet through ``window.ethereum``
(EIP-1193): the wallet signs the commitment request (personal_sign) and sends the contract
transactions (eth_sendTransaction); the page never sees a private key.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC = Path(__file__).with_name("static")
BUNDLE = STATIC / "app.js"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; "
                               "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every HTTP response of the service (pages, static files and API)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()
                            if k.lower().encode() not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def _page(path: str, name: str) -> Route:
    async def serve(request: Request) -> Response:
        if not BUNDLE.is_file():
            return PlainTextResponse(f"the pages' wallet bundle {BUNDLE} is missing: run `make web` (esbuild "
                                     "from web/package.json) or reinstall parkgate", status_code=503)
        return FileResponse(STATIC / name, media_type="text/html; charset=utf-8",
                            headers={"Cache-Control": "no-cache"})

    return Route(path, serve, methods=["GET"])


def page_routes() -> list[BaseRoute]:
    """``/`` (the renter's page), ``/owner`` (the owner's page) and ``/static/...``."""
    return [_page("/", "renter.html"), _page("/owner", "owner.html"),
            Mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")]
