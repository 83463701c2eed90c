"""The conformance harness's own rules, without a server: what counts as a mismatch, how the
junit XML is read, which reasons expected.toml accepts."""
from __future__ import annotations

from pathlib import Path

import pytest

from conformance_harness import (CATEGORIES, EXPECTED, INTERNET, TODO, Expected, Result, compare,
                                 load_expected, parse_junit, summary)

URL = "https://example.invalid/file.html"


def _exp(test_id: str, value: str) -> Expected:
    outcome, _, rest = value.partition(": ")
    category = next(c for c in CATEGORIES if rest.startswith(c))
    return Expected(test_id, outcome, category, value)


def test_each_mismatch_is_one_line_naming_the_test_and_what_to_do():
    results = {r.test_id: r for r in [
        Result("t.py::unlisted_fails", "failed", "StatusCode.UNIMPLEMENTED: /pfs_v2.API/Fsck ..."),
        Result("t.py::unlisted_passes", "passed", ""),
        Result("t.py::todo_now_passes", "passed", ""),
        Result("t.py::todo_still_fails", "error", "setup failed"),
        Result("t.py::skip_ran", "failed", "boom"),
        Result("t.py::skip_skipped", "skipped", "enterprise code not available"),
        Result("t.py::offline", "failed", "no network"),
        Result("t.py::online", "failed", "StatusCode.UNIMPLEMENTED: put_file_url"),
    ]}
    expected = {e.test_id: e for e in [
        _exp("t.py::todo_now_passes", f"fail: {TODO}"),
        _exp("t.py::todo_still_fails", f"fail: {TODO}"),
        _exp("t.py::skip_ran", "skip: needs an enterprise licence"),
        _exp("t.py::skip_skipped", "skip: needs an enterprise licence"),
        _exp("t.py::offline", f"fail: {INTERNET}: {URL}"),
        _exp("t.py::online", f"fail: {INTERNET}: {URL}x"),
        _exp("t.py::gone", "fail: needs Kubernetes: secrets"),
    ]}
    problems = compare(results, expected, online={URL: False, URL + "x": True})
    by_test = {p.split(": ", 1)[0]: p for p in problems}
    assert set(by_test) == {"t.py::unlisted_fails", "t.py::todo_now_passes", "t.py::skip_ran",
                            "t.py::online", "t.py::gone"}
    assert by_test["t.py::unlisted_fails"].endswith("expected pass, got failed: "
                                                    "StatusCode.UNIMPLEMENTED: /pfs_v2.API/Fsck ...")
    assert "now passes: remove its line from expected.toml" in by_test["t.py::todo_now_passes"]
    assert "expected skip" in by_test["t.py::skip_ran"] and by_test["t.py::skip_ran"].endswith("boom")
    # The URL answers from here, so the test must pass.
    assert "expected pass, got failed" in by_test["t.py::online"]
    assert "not in the suite: remove its line" in by_test["t.py::gone"]


def test_summary_counts_outcomes_and_the_todo_lines_by_file():
    results = {"a.py::x": Result("a.py::x", "passed", ""), "a.py::y": Result("a.py::y", "error", ""),
               "b.py::z": Result("b.py::z", "skipped", "")}
    expected = {"a.py::y": _exp("a.py::y", f"fail: {TODO}"), "b.py::w": _exp("b.py::w", f"fail: {TODO}")}
    counts, todo = summary(results, expected)
    assert "1 passed, 0 failed, 1 errors, 1 skipped (of 3)" in counts
    assert f"2 '{TODO}' tests (a.py 1, b.py 1)" in todo


def test_junit_ids_classes_and_the_worse_of_two_entries(tmp_path: Path):
    xml = tmp_path / "r.xml"
    xml.write_text("""<?xml version="1.0"?><testsuites><testsuite>
      <testcase classname="tests.test_pfs" name="test_a" file="tests/test_pfs.py"/>
      <testcase classname="tests.test_pfs.TestPFSFile" name="test_b" file="tests/test_pfs.py">
        <error message='failed on setup with "grpc._channel._InactiveRpcError: &lt;_InactiveRpcError of RPC that terminated with:&#10;&#09;status = StatusCode.NOT_FOUND&#10;&#09;details = &quot;repo x not found&quot;&#10;&gt;"'/>
      </testcase>
      <testcase classname="tests.test_pfs" name="test_c" file="tests/test_pfs.py"/>
      <testcase classname="tests.test_pfs" name="test_c" file="tests/test_pfs.py">
        <error message="failed on teardown with &quot;boom&quot;"/>
      </testcase>
      <testcase classname="tests.test_auth" name="test_d" file="tests/test_auth.py">
        <skipped message="enterprise code not available"/>
      </testcase>
    </testsuite></testsuites>""")
    got = parse_junit(xml)
    assert got["tests/test_pfs.py::test_a"].outcome == "passed"
    b = got["tests/test_pfs.py::TestPFSFile::test_b"]
    assert (b.outcome, b.message) == ("error", "StatusCode.NOT_FOUND: repo x not found")
    assert got["tests/test_pfs.py::test_c"].outcome == "error"  # its teardown failed
    assert got["tests/test_auth.py::test_d"] == Result("tests/test_auth.py::test_d", "skipped",
                                                       "enterprise code not available")


@pytest.mark.parametrize("value, words", [
    ("fail: flaky on my laptop", "must be '<skip|fail>: <reason>'"),
    ("xfail: needs Kubernetes", "must be '<skip|fail>: <reason>'"),
    (f"fail: {INTERNET}", "must name the URL"),
])
def test_expectations_accept_only_the_allowed_reasons(tmp_path: Path, value: str, words: str):
    path = tmp_path / "expected.toml"
    path.write_text(f'[tests]\n"t.py::x" = "{value}"\n')
    with pytest.raises(pytest.fail.Exception) as e:
        load_expected(path)
    assert "'t.py::x'" in str(e.value) and words in str(e.value)


def test_the_projects_expectations_file_is_valid():
    expected = load_expected(EXPECTED)
    assert expected  # the enterprise tests at least
    assert all(e.test_id.startswith("tests/test_") and "::" in e.test_id for e in expected.values())
