"""Browser steps shared by the console's tests."""

from __future__ import annotations

import os
from typing import Any

CHROMIUM = "/usr/bin/chromium"


def chromium_args() -> list[str]:
    """Chromium's sandbox needs user namespaces that root in a container lacks."""
    return ["--no-sandbox"] if os.geteuid() == 0 else []


def log_in(context: Any, base: str, user: str, password: str) -> Any:
    """A new page of ``context`` that has submitted the login form; the page after it."""
    page = context.new_page()
    page.goto(base + "/login")
    page.fill("input[name=user]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    return page


def answer(response: Any) -> tuple[int, str]:
    """An API response's status and text, read before its browser context closes."""
    return response.status, response.text()
