"""Prints the conformance run's summary lines (recorded by the test as ``conformance_summary``
user properties) at the end of pytest's terminal output, so CI logs show the counts even when the
test passes.

Registered by ``conftest.py`` beside it; under pytest-xdist the terminal summary runs in the
controller, which loads only the top conftest, so ``tests/conftest.py`` names this module in
``pytest_plugins`` too (``"conformance.conformance_summary"``). The lines are printed once either way.
"""
from __future__ import annotations

KEY = "conformance_summary"


def pytest_terminal_summary(terminalreporter) -> None:
    if getattr(terminalreporter, "_conformance_summary_done", False):
        return  # registered twice (both conftests): print once
    terminalreporter._conformance_summary_done = True
    # Every report of the test (call, teardown) carries its properties: each line once, in order.
    lines = list(dict.fromkeys(
        value for reports in terminalreporter.stats.values() for r in reports
        for key, value in getattr(r, "user_properties", ()) if key == KEY))
    if lines:
        terminalreporter.section("python-pachyderm conformance")
        for line in lines:
            terminalreporter.write_line(line)
