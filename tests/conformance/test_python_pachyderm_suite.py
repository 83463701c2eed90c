"""python-pachyderm 7.6.0's own test suite, run unchanged against `pix2pix local serve` (issue 19).

Every test of the suite must pass, except those listed in expected.toml with their reasons (see
conformance_harness.py). The whole run is one test: only one process may bind port 30650, and
the suite's tests share the one server (they clean up after themselves with ``delete_all``).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conformance_harness import (INTERNET, SUITE, compare, load_expected, parse_junit, reachable,
                                 run_suite, start_server, stop_server, summary, tail)


@pytest.mark.slow
def test_python_pachyderm_suite(shared_dir: Path, tmp_path: Path, record_property) -> None:
    suite = shared_dir / SUITE
    if not suite.is_dir():
        pytest.skip(f"python-pachyderm's test suite not found under {suite}")
    expected = load_expected()
    work = tmp_path / "suite"
    work.mkdir()
    # A writable copy (the reference folder is read-only); the suite's files are not changed.
    shutil.copytree(suite, work / "tests", ignore=shutil.ignore_patterns("__pycache__"),
                    copy_function=shutil.copyfile)
    online = {e.url: reachable(e.url) for e in expected.values() if e.category == INTERNET}

    proc = start_server(tmp_path / "state", tmp_path / "server.log")
    try:
        junit = run_suite(work, tmp_path / "suite.log")
    finally:
        stop_server(proc)
    results = parse_junit(junit)
    if not results:
        pytest.fail(f"the suite ran no test; its output:\n{tail(tmp_path / 'suite.log')}",
                    pytrace=False)

    lines = summary(results, expected)
    for line in lines:
        record_property("conformance_summary", line)  # printed in the terminal summary (conftest)
    problems = compare(results, expected, online)
    assert not problems, "\n".join(
        [*lines, f"{len(problems)} tests did not do what expected.toml says:", *problems,
         f"(server log tail)\n{tail(tmp_path / 'server.log', 15)}"])
