"""The `parkgate demo` scenario as a test: anvil + contract, two emulated gates on ptys, recorded
cameras, the bundled models and the daemon as a subprocess; every expectation of the demo must hold."""

from __future__ import annotations

import re

from edge.tools.demo.scenario import run_demo


def test_demo_day_meets_every_expectation(tmp_path, capsys):
    run = run_demo(tmp_path / "demo")
    failed = [f"{c.what}: {c.detail}" for c in run.checks if not c.ok]
    assert run.ok, failed
    assert [c.ok for c in run.checks if c.what.startswith("console answers")] == [True]
    shown = capsys.readouterr().out
    assert re.search(r"console: http://127\.0\.0\.1:\d+/  user demo  password \S{16}", shown), shown[-2000:]
    report = (tmp_path / "demo" / "report" / "report.md").read_text()
    assert "PASS" in report and ".jpg" in report
    # The bookings' commitments came from the booking service (signed requests), not from test helpers;
    # the cars booked that way were admitted above (car-a, car-f).
    service_log = (tmp_path / "demo" / "booking-service.log").read_text()
    assert service_log.count('"POST /api/commitment HTTP/1.1" 200') == len(run.bookings) == 4
