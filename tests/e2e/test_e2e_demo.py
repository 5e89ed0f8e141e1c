"""The `parkgate demo` scenario as a test: anvil + contract, two emulated gates on ptys, recorded
cameras, the bundled models and the daemon as a subprocess; every expectation of the demo must hold."""

from __future__ import annotations

from edge.tools.demo.scenario import run_demo


def test_demo_day_meets_every_expectation(tmp_path):
    run = run_demo(tmp_path / "demo")
    failed = [f"{c.what}: {c.detail}" for c in run.checks if not c.ok]
    assert run.ok, failed
    report = (tmp_path / "demo" / "report" / "report.md").read_text()
    assert "PASS" in report and ".jpg" in report
    # The bookings' commitments came from the booking service (signed requests), not from test helpers;
    # the cars booked that way were admitted above (car-a, car-f).
    service_log = (tmp_path / "demo" / "booking-service.log").read_text()
    assert service_log.count('"POST /api/commitment HTTP/1.1" 200') == len(run.bookings) == 4
