"""The demo's console in a browser: the demo day (anvil, the rental contract, the booking service, two
emulated gates, the daemon) and then, while `run_demo` waits as it does for Enter, a browser logs in with
the credentials the demo printed and finds the day's passes with their evidence images and their gate
records confirmed on chain."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from console_browsing import log_in

from edge.tools.demo.scenario import run_demo


def test_the_demo_day_in_the_console_with_chain_delivery_confirmed(tmp_path: Path, capsys: Any,
                                                                    browser: Any) -> None:
    seen: dict[str, Any] = {}

    def look(prompt: str) -> None:
        printed = capsys.readouterr().out
        url, user, password = re.search(r"console: (\S+)/  user (\S+)  password (\S+)", printed).groups()  # type: ignore[union-attr]
        context = browser.new_context()
        try:
            page = log_in(context, url, user, password)
            page.wait_for_selector("table#lanes")
            page.goto(url + "/passes")
            rows = page.locator("table#passes tr[data-seq]")
            seen["rows"] = [rows.nth(i).inner_text() for i in range(rows.count())]
            seen["images"] = page.eval_on_selector_all(
                "img.evidence", "imgs => imgs.filter(i => i.complete && i.naturalWidth > 0).length")
        finally:
            context.close()

    run = run_demo(tmp_path / "demo", wait=look)
    assert run.ok, [f"{c.what}: {c.detail}" for c in run.checks if not c.ok]
    rows = seen["rows"]
    admitted = [row for row in rows if "check_in" in row]
    assert len(rows) >= len(run.results) and admitted, rows
    assert all("chain: confirmed" in row for row in admitted), admitted
    assert seen["images"] >= len(admitted)
    assert not any(re.search(r"\b[A-Z]{2} ?\d{3}-?[A-Z]{2}\b", row) for row in rows)  # masked plates only
