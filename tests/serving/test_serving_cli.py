"""`pix2pix serve` as a user runs it: the ready line and its curl example, SIGHUP, SIGTERM, and
one-line errors for a bad --model, a bad option or a busy port."""
from __future__ import annotations

import json
import os
import queue
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.serving.conftest import INFO, decode_png, image, png_bytes, request

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    env.pop("PIX2PIX_MODEL_INFO", None)
    env.pop("model_COMMIT", None)
    return env


def _run(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pix2pix", "serve", *args], capture_output=True,
                          text=True, timeout=120, env=_env(), **kw)


class _Lines:
    """stderr of a running process, line by line, without blocking the test forever."""

    def __init__(self, proc: subprocess.Popen):
        self.q: queue.Queue[str] = queue.Queue()
        self.all: list[str] = []
        threading.Thread(target=self._pump, args=(proc.stderr,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self.q.put(line.rstrip("\n"))
        self.q.put("")  # EOF

    def until(self, pattern: str, timeout: float = 120) -> str:
        while True:
            try:
                line = self.q.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r}; got {self.all}") from None
            self.all.append(line)
            if re.search(pattern, line):
                return line
            if line == "" and self.q.empty():
                raise AssertionError(f"EOF before {pattern!r}; got {self.all}")

    def rest(self, timeout: float = 30) -> list[str]:
        """The lines left until EOF."""
        left = []
        while (line := self.q.get(timeout=timeout)) != "" or not self.q.empty():
            left.append(line)
        return left


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_serve_prints_a_working_curl_reloads_on_sighup_and_stops_on_sigterm(
        real_export, tmp_path):
    # as in a Pachyderm service: the info file from the environment, the commit from
    # model_COMMIT (the info names none)
    info = tmp_path / "info.json"
    info.write_text(json.dumps({"repo": "model", "metrics": INFO["metrics"]}))
    env = {**_env(), "PIX2PIX_MODEL_INFO": str(info), "model_COMMIT": "5eed5eed"}
    proc = subprocess.Popen([sys.executable, "-m", "pix2pix", "serve", "--model", str(real_export),
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=tmp_path)
    try:
        lines = _Lines(proc)
        ready = lines.until(r"^ready: ")
        url = re.search(r"at (http://127\.0\.0\.1:\d+/) ", ready)[1]
        curl = ready.split("try: ", 1)[1]
        # the example, run as printed, in a folder holding the image it names
        (tmp_path / "image.png").write_bytes(png_bytes(image(100, 140, seed=21)))
        done = subprocess.run(shlex.split(curl), cwd=tmp_path, capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert decode_png((tmp_path / "out.png").read_bytes()).shape == (100, 140, 3)
        described = request(url + "v1/models/pix2pix/info").json()
        assert (described["commit"], described["metrics"]) == ("5eed5eed", INFO["metrics"])

        proc.send_signal(signal.SIGHUP)
        lines.until(r"^serving pix2pix version 2 ")
        assert request(url + "healthz").json()["version"] == 2

        proc.send_signal(signal.SIGTERM)
        last = lines.until(r"^stopped: ", 60)
        proc.wait(60)
        assert lines.rest() == [], "the stop line is not the last one"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, lines.all
    assert last.startswith("stopped: 1 prediction(s) answered, 0 refused as bad input") and \
        url in last, last


@pytest.mark.parametrize("make,words", [
    (lambda p: p / "missing", "missing: model folder not found"),
    (lambda p: p, "no saved_model.pb; is it a `pix2pix export` folder?"),
    (lambda p: (p / "f.txt").write_text("x") and p / "f.txt", "f.txt: not a folder"),
])
def test_a_bad_model_is_one_line_and_exit_4(tmp_path, make, words):
    p = _run("--model", str(make(tmp_path)), "--port", "0")
    assert p.returncode == 4, p.stderr
    assert p.stderr.startswith("Error: ") and words in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_bad_options_and_a_busy_port_are_one_line_and_exit_2(fake_exports, tmp_path):
    p = _run("--model", str(fake_exports["identity"]), "--max_queue", "0")
    assert (p.returncode, p.stderr.strip()) == (2, "Error: --max_queue 0: must be positive")
    p = _run("--model", str(fake_exports["identity"]), "--model_info", str(tmp_path / "no.json"))
    assert p.returncode == 2 and "no.json: model info file not found" in p.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = _run("--model", str(fake_exports["identity"]), "--port", str(port))
    assert p.returncode == 2
    assert p.stderr.strip() == (f"Error: cannot listen on 127.0.0.1:{port} (Address already in "
                                "use); stop what holds it or give another --port")
