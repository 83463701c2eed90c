"""The machinery of the conformance run (test_python_pachyderm_suite.py): python-pachyderm
7.6.0's own test suite, run unchanged against `pix2pix local serve` (issue 19).

The suite (../shared/reference/python-pachyderm/v7.6.0/tests, written by Pachyderm's maintainers
against a live pachd) is copied into a temporary folder and run by a second pytest, against a
``pix2pix local serve`` the test starts on 127.0.0.1:30650 (the address python-pachyderm's
``Client()`` falls back to, which ``test_client_new_from_config`` expects) with a fresh state
folder. The result of every one of its tests is then checked against ``expected.toml`` beside
this file: a test not listed there must pass, a listed ``skip`` must be skipped and a listed
``fail`` must fail, so the list cannot rot (a listed test that starts passing is reported, to be
taken off the list).
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXPECTED = Path(__file__).with_name("expected.toml")
SUITE = Path("reference", "python-pachyderm", "v7.6.0", "tests")
HOST, PORT = "127.0.0.1", 30650
# The pachd release python-pachyderm 7.6 targets; the suite reads it instead of asking the server.
PACHYDERM_VERSION = "2.6.0"
PER_TEST_TIMEOUT_S = 120
SUITE_TIMEOUT_S = 540  # the whole suite; keeps this test well under the 10 minutes it may take

# The only reasons a test of the suite may be listed: what a single machine without Kubernetes,
# an enterprise licence or (possibly) internet access cannot give. TODO marks engine work left.
TODO = "TODO engine (lead)"
INTERNET = "needs internet"
CATEGORIES = ("needs Kubernetes", "needs auth", "needs an enterprise licence", INTERNET, TODO)
OUTCOMES = ("skip", "fail")


@dataclass(frozen=True)
class Expected:
    """One line of expected.toml: ``"tests/test_x.py::test_y" = "fail: needs internet: ..."``."""

    test_id: str
    outcome: str  # "skip" or "fail"
    category: str  # one of CATEGORIES
    reason: str  # the whole value, as written

    @property
    def url(self) -> str | None:
        """The URL a ``needs internet`` test fetches (named in its reason)."""
        m = re.search(r"https?://\S+", self.reason)
        return m.group(0) if m else None


@dataclass(frozen=True)
class Result:
    test_id: str
    outcome: str  # "passed", "failed", "error" or "skipped"
    message: str  # the first line of the failure, error or skip reason


# -- the expectations file ----------------------------------------------------------------------
def load_expected(path: Path = EXPECTED) -> dict[str, Expected]:
    """Read and check expected.toml; a malformed line fails the test naming it."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        pytest.skip(f"reading {path.name} needs Python 3.11 or later (tomllib)")
    with path.open("rb") as f:
        try:
            table = tomllib.load(f).get("tests", {})
        except tomllib.TOMLDecodeError as e:
            pytest.fail(f"{path.name}: not valid TOML: {e}", pytrace=False)
    found, bad = {}, []
    for test_id, value in table.items():
        outcome, _, rest = str(value).partition(":")
        category = next((c for c in CATEGORIES if rest.strip().startswith(c)), None)
        if outcome not in OUTCOMES or category is None:
            bad.append(f"{path.name}: {test_id!r} = {value!r}: the value must be '<skip|fail>: "
                       f"<reason>' with a reason starting with one of: {', '.join(CATEGORIES)}")
            continue
        found[test_id] = Expected(test_id, outcome, category, str(value))
        if category == INTERNET and found[test_id].url is None:
            bad.append(f"{path.name}: {test_id!r}: a '{INTERNET}' reason must name the URL it fetches")
    if bad:
        pytest.fail("\n".join(bad), pytrace=False)
    return found


def reachable(url: str, timeout_s: float = 5.0) -> bool:
    """Whether ``url`` answers from this machine (then the tests that fetch it must pass)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout_s):
            return True
    except Exception:  # noqa: BLE001 - any failure (DNS, refused, TLS, HTTP error) means "not here"
        return False


# -- the server ---------------------------------------------------------------------------------
def _port_taken(host: str, port: int) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as e:
            return e.strerror or str(e)
    return None


def start_server(state: Path, log: Path) -> subprocess.Popen:
    """``pix2pix local serve`` on HOST:PORT, its output in ``log``; returns once it answers."""
    import python_pachyderm

    why = _port_taken(HOST, PORT)
    if why:
        pytest.fail(f"port {PORT} on {HOST} is taken ({why}): python-pachyderm's suite needs "
                    f"`pix2pix local serve` there; stop what holds it and rerun", pytrace=False)
    env = _clean_env()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pix2pix", "local", "serve", "--port", str(PORT),
             "--state", str(state), "--executor", "process"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
            start_new_session=True)  # its own group: transforms it starts go with it at the end
    client = python_pachyderm.Client(host=HOST, port=PORT)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            pytest.fail(f"`pix2pix local serve` exited with {proc.returncode} before answering:\n"
                        f"{tail(log)}", pytrace=False)
        try:
            client.get_remote_version()
            return proc
        except Exception:  # noqa: BLE001 - not listening yet
            if time.monotonic() > deadline:
                stop_server(proc)
                pytest.fail(f"`pix2pix local serve` did not answer on {HOST}:{PORT} within 60 s:\n"
                            f"{tail(log)}", pytrace=False)
            time.sleep(0.2)


def stop_server(proc: subprocess.Popen, grace_s: float = 15.0) -> None:
    """SIGTERM (the server finishes in-flight calls and stops its transforms), then SIGKILL."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the server, if still up, and anything it left
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait(timeout=grace_s)


def _clean_env() -> dict[str, str]:
    # Neither this pytest's options nor an engine state or executor of the caller's shell.
    drop = ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PIX2PIX_STATE", "PIX2PIX_EXECUTOR", "PIX2PIX_DEFER")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    # Transforms run `python3`: make it this interpreter's environment (python_pachyderm inside).
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


# -- running and reading the suite --------------------------------------------------------------
def run_suite(work: Path, log: Path) -> Path:
    """Run the copied suite in ``work`` with pytest; returns its junit XML."""
    missing = [dist for dist, module in (("pytest-mock", "pytest_mock"),
                                         ("pytest-timeout", "pytest_timeout"))
               if importlib.util.find_spec(module) is None]
    if missing:
        pytest.fail(f"python-pachyderm's suite needs {' and '.join(missing)}: install the test "
                    "extra (pip install -e '.[test]')", pytrace=False)
    results = work / "results.xml"
    # An empty ini file in the copy: no pytest configuration above the temporary folder applies.
    (work / "pytest.ini").write_text("[pytest]\n")
    env = _clean_env()
    env.pop("PYTHONPATH", None)  # `tests` must be the copied suite, not this project's tests
    # pachctl's config for this endpoint (the one `pachctl connect grpc://localhost:30650`
    # writes), so no config of this machine's user is read; HOME too, for ~/.pachyderm.
    config = work / "pachctl-config.json"
    config.write_text(json.dumps({"v2": {"active_context": "local", "contexts": {
        "local": {"pachd_address": f"grpc://localhost:{PORT}"}}}}))
    env.update(PACHYDERM_VERSION=PACHYDERM_VERSION, HOME=str(work), PACH_CONFIG=str(config),
               # The engine's process executor records transform.image and never pulls it.
               DATUM_BATCHING_IMAGE="python:3.11-slim")
    cmd = [sys.executable, "-m", "pytest", str(work / "tests"), "-p", "no:cacheprovider",
           "-c", str(work / "pytest.ini"), "--rootdir", str(work), f"--junitxml={results}",
           "-o", "junit_family=xunit1", "--timeout", str(PER_TEST_TIMEOUT_S), "-q"]
    with log.open("wb") as out:
        try:
            subprocess.run(cmd, cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=out,
                           stderr=subprocess.STDOUT, timeout=SUITE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the suite ran over {SUITE_TIMEOUT_S} s; its last output:\n{tail(log)}",
                        pytrace=False)
    if not results.is_file():
        pytest.fail(f"the suite wrote no {results.name}; its output:\n{tail(log)}", pytrace=False)
    return results


def parse_junit(path: Path) -> dict[str, Result]:
    """{``tests/test_x.py::test_y``: Result} from pytest's junit XML (xunit1: with ``file``)."""
    found: dict[str, Result] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        file = case.get("file") or case.get("classname", "").replace(".", "/") + ".py"
        classes = case.get("classname", "").split(".")[len(Path(file).with_suffix("").parts):]
        test_id = "::".join([file, *classes, case.get("name", "")])
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            el = case.find(tag)
            if el is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                message = _first_line(el.get("message") or el.text or "")
                break
        previous = found.get(test_id)
        # A teardown error is a second entry for a test that passed: the worse outcome counts.
        if previous is None or previous.outcome in ("passed", "skipped"):
            found[test_id] = Result(test_id, outcome, message)
    return found


def _first_line(text: str) -> str:
    """The first line of a failure; for a gRPC error (whose first line says only that an RPC
    ended), its status code and details."""
    code = re.search(r"status = (StatusCode\.\w+)", text)
    details = re.search(r'details = "(.*)"', text)
    if code and details:
        return f"{code.group(1)}: {details.group(1)}"[:300]
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[0][:300] if lines else ""


def compare(results: dict[str, Result], expected: dict[str, Expected],
            online: dict[str, bool]) -> list[str]:
    """One line per test whose outcome is not the expected one (empty: all as expected)."""
    problems = []
    for test_id, r in sorted(results.items()):
        exp = expected.get(test_id)
        if exp is not None and exp.category == INTERNET and online.get(exp.url or ""):
            exp = None  # the URL answers from here, so the test must pass
        if exp is None:
            if r.outcome != "passed":
                problems.append(f"{test_id}: expected pass, got {r.outcome}: {r.message}")
        elif exp.outcome == "skip" and r.outcome != "skipped":
            problems.append(f"{test_id}: expected skip ({exp.reason}), got {r.outcome}"
                            + (f": {r.message}" if r.message else ""))
        elif exp.outcome == "fail" and r.outcome not in ("failed", "error"):
            problems.append(f"{test_id}: expected fail ({exp.reason}), got {r.outcome}; "
                            + ("it now passes: remove its line from expected.toml"
                               if r.outcome == "passed" else r.message))
    for test_id in sorted(set(expected) - set(results)):
        problems.append(f"{test_id}: listed in expected.toml but not in the suite: remove its line")
    return problems


def summary(results: dict[str, Result], expected: dict[str, Expected]) -> list[str]:
    """The lines for CI's log: the counts, then the TODO lines still listed, by file."""
    counts = Counter(r.outcome for r in results.values())
    lines = [f"python-pachyderm 7.6.0 suite against pix2pix local serve: {counts['passed']} passed, "
             f"{counts['failed']} failed, {counts['error']} errors, {counts['skipped']} skipped "
             f"(of {len(results)})"]
    todo = Counter(e.test_id.split("::")[0] for e in expected.values() if e.category == TODO)
    if todo:
        by_file = ", ".join(f"{f.rsplit('/', 1)[-1]} {n}" for f, n in sorted(todo.items()))
        lines.append(f"expected.toml still lists {sum(todo.values())} '{TODO}' tests ({by_file})")
    return lines
