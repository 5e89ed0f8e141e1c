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
