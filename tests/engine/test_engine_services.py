"""Service pipelines on the embedded engine, with a small HTTP server as the code (no
TensorFlow): reachable on 127.0.0.1:externalPort, a job per input commit, a new commit brought
in by a restart (or a reload signal) with no request lost, crashes restarted with back-off and
logged, stop/start/delete, and the specs the engine refuses in one line."""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import threading
import time

import pytest

from pix2pix.errors import SpecError
from pix2pix.pachyderm.engine import Engine

from engine_testlib import pfs, put

# The code: GET answers the input's /index.html and the commit it came from. It reads its input
# once at start and again on SIGHUP (from /pfs/.env, as the engine rewrites it for a reload),
# and on SIGTERM it stops accepting and finishes what it has in flight.
SERVER = r"""
import http.server, os, signal, sys, threading
port = int(sys.argv[1])
def read_env():
    env = dict(os.environ)
    try:
        for line in open(os.path.join(os.path.dirname(env["site"].rstrip("/")), ".env")):
            k, _, v = line.rstrip("\n").partition("=")
            env[k] = v
    except OSError:
        pass
    return env
state = {}
def load(*_):
    env = read_env()
    state["body"] = open(os.path.join(env["site"], "index.html"), "rb").read()
    state["commit"] = env["site_COMMIT"]
load()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body, commit = state["body"], state["commit"]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Commit", commit)
        self.send_header("X-Pid", str(os.getpid()))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
srv.daemon_threads = False
signal.signal(signal.SIGHUP, load)
signal.signal(signal.SIGTERM, lambda *a: threading.Thread(target=srv.shutdown).start())
print("serving", state["commit"], flush=True)
srv.serve_forever()
srv.server_close()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def service_spec(name: str = "web", *, internal: int, external: int, reload: bool = False,
                 glob: str = "/", **extra) -> dict:
    spec = {"pipeline": {"name": name}, "input": pfs("site", glob),
            "transform": {"cmd": ["python3", "-c", SERVER, str(internal)]},
            "service": {"internalPort": internal, "externalPort": external}}
    if reload:
        spec["metadata"] = {"annotations": {"pix2pix/reload-signal": "SIGHUP"}}
    spec.update(extra)
    return spec


def get(port: int, timeout: float = 30) -> tuple[int, str, str, str]:
    """(status, body, X-Commit, X-Pid) of GET / on a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/")
        r = conn.getresponse()
        return r.status, r.read().decode(), r.getheader("X-Commit", ""), r.getheader("X-Pid", "")
    finally:
        conn.close()


def wait_until(predicate, timeout: float = 30, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


@pytest.fixture
def svc_eng(eng: Engine):
    """An engine with a repo ``site`` holding index.html "v1"; every pipeline's supervisor is
    stopped after the test."""
    eng.create_repo("site")
    put(eng, "site", {"/index.html": "v1"})
    yield eng
    for p in eng.list_pipelines():
        eng.delete_pipeline(p.name, force=True)


class Load:
    """Threads requesting GET / on fresh connections until stopped; every answer is recorded."""

    def __init__(self, port: int, threads: int = 3) -> None:
        self.port, self.answers, self.failures = port, [], []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status, body, commit, pid = get(self.port)
            except OSError as e:  # refused or reset: a lost request
                self.failures.append(repr(e))
                continue
            if status != 200:
                self.failures.append(f"HTTP {status}")
            self.answers.append((body, commit, pid))

    def __enter__(self) -> "Load":
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)


def test_service_serves_its_input_and_says_so_in_pipeline_info(svc_eng: Engine, cli_run):
    internal, external = free_port(), free_port()
    info = svc_eng.create_pipeline(service_spec(internal=internal, external=external))
    head = svc_eng.inspect_branch("site", "master").head
    assert info.service_url == f"http://127.0.0.1:{external}/"  # listening once create returns
    status, body, commit, _ = get(external)
    assert (status, body, commit) == (200, "v1", head)
    p = wait_until(lambda: (q := svc_eng.inspect_pipeline("web")).service_job and q, what="job")
    assert p.service_state == "running"
    assert [(c.repo, c.branch, c.commit) for c in p.service_commits] == [("site", "master", head)]
    job = svc_eng.inspect_job("web", p.service_job)
    assert (job.state, job.processed, job.total, job.inputs[0].commit) == ("success", 1, 1, head)
    # the same fields in the CLI's JSON
    listed = json.loads(cli_run("list", "pipeline", "--json").output)
    assert listed[0]["service_url"] == p.service_url and listed[0]["service_state"] == "running"
    # and in the tables a user reads
    row = cli_run("list", "pipeline").output.splitlines()[1]
    assert f"service running {p.service_url}" in row, row
    shown = cli_run("inspect", "pipeline", "web").output
    assert "Service: running" in shown and f"Service URL: {p.service_url}" in shown
    assert f"Serving: site@{head}" in shown
    assert "supervisor: serving job" in "\n".join(l.message for l in svc_eng.logs("web"))


@pytest.mark.slow
def test_new_commit_restarts_the_code_and_loses_no_request(svc_eng: Engine):
    internal, external = free_port(), free_port()
    svc_eng.create_pipeline(service_spec(internal=internal, external=external))
    wait_until(lambda: get(external)[0] == 200, what="the first answer")
    with Load(external) as load:
        time.sleep(1)
        for version in ("v2", "v3"):
            c = put(svc_eng, "site", {"/index.html": version})
            wait_until(lambda: get(external)[2] == c.id, what=f"{version} served")
            time.sleep(1)
    assert load.failures == []
    bodies = {}
    for body, commit, _ in load.answers:
        bodies.setdefault(commit, set()).add(body)
    assert len(bodies) == 3 and all(len(b) == 1 for b in bodies.values())  # no mix
    assert {b.pop() for b in bodies.values()} == {"v1", "v2", "v3"}
    assert len({pid for _, _, pid in load.answers}) == 3  # restarted each time
    jobs = svc_eng.list_jobs("web")
    assert [j.state for j in jobs] == ["success"] * 3


@pytest.mark.slow
def test_reload_signal_swaps_in_place(svc_eng: Engine):
    internal, external = free_port(), free_port()
    svc_eng.create_pipeline(service_spec(internal=internal, external=external, reload=True))
    first = wait_until(lambda: (r := get(external))[0] == 200 and r, what="the first answer")
    with Load(external) as load:
        c = put(svc_eng, "site", {"/index.html": "v2"})
        wait_until(lambda: get(external)[2] == c.id, what="v2 served")
    assert load.failures == []
    status, body, commit, pid = get(external)
    assert (body, commit) == ("v2", c.id)
    assert pid == first[3], "the reload signal swapped the input without a restart"
    assert any("sent SIGHUP" in line.message for line in svc_eng.logs("web"))


@pytest.mark.slow
def test_crash_is_restarted_with_back_off_and_logged(svc_eng: Engine):
    internal, external = free_port(), free_port()
    svc_eng.create_pipeline(service_spec(internal=internal, external=external))
    _, _, _, pid = wait_until(lambda: (r := get(external))[0] == 200 and r, what="an answer")
    os.kill(int(pid), signal.SIGKILL)
    wait_until(lambda: refused(internal), what="the code gone")
    # a request during the back-off waits for the restarted code instead of being refused
    status, body, _, new_pid = get(external)
    assert (status, body) == (200, "v1") and new_pid != pid
    p = svc_eng.inspect_pipeline("web")
    assert p.service_restarts == 1 and p.service_detail in ("", "exit code -9")
    lines = [line.message for line in svc_eng.logs("web")]
    assert any("the code exited with code -9; restarting in" in m for m in lines), lines


def test_stop_start_and_delete(svc_eng: Engine):
    internal, external = free_port(), free_port()
    svc_eng.create_pipeline(service_spec(internal=internal, external=external))
    wait_until(lambda: get(external)[0] == 200, what="an answer")
    # Its job has served and is done (nothing queued): a start must serve the same datum again.
    job = wait_until(lambda: (j := svc_eng.list_jobs("web")[0]).state == "success" and j,
                     what="the service's job to end")
    stopped = svc_eng.stop_pipeline("web")
    assert stopped.state == "paused"
    assert svc_eng.inspect_pipeline("web").service_state == "stopped"
    assert refused(external) and refused(internal)
    svc_eng.start_pipeline("web")
    assert get(external)[:2] == (200, "v1")
    wait_until(lambda: any(line.message.startswith(f"supervisor: serving job {job.id} again")
                           for line in svc_eng.logs("web")), what="the log of the resume")
    assert svc_eng.inspect_pipeline("web").service_job == job.id
    assert [j.id for j in svc_eng.list_jobs("web")] == [job.id]  # nothing new recorded
    svc_eng.delete_pipeline("web")
    assert refused(external) and refused(internal)
    assert not (svc_eng.state_dir / "services" / "web" / "code.pid").exists()


def test_empty_input_waits_then_serves(eng: Engine):
    eng.create_repo("site")
    internal, external = free_port(), free_port()
    try:
        eng.create_pipeline(service_spec(internal=internal, external=external))
        p = eng.inspect_pipeline("web")
        assert p.service_state == "waiting" and p.service_url
        c = put(eng, "site", {"/index.html": "late"})
        assert get(external)[:3] == (200, "late", c.id)
    finally:
        eng.delete_pipeline("web")


def test_more_than_one_datum_fails_the_job_and_keeps_serving(svc_eng: Engine):
    internal, external = free_port(), free_port()
    svc_eng.create_pipeline(service_spec(internal=internal, external=external))
    wait_until(lambda: get(external)[0] == 200, what="an answer")
    svc_eng.create_pipeline(service_spec(internal=internal, external=external, glob="/*"),
                            update=True)
    put(svc_eng, "site", {"/other.html": "x"})
    failed = wait_until(lambda: [j for j in svc_eng.list_jobs("web") if j.state == "failure"],
                        what="a failed job")
    assert "services must have a single datum" in failed[0].reason


def test_a_taken_port_is_reported(svc_eng: Engine):
    internal = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        external = taken.getsockname()[1]
        svc_eng.create_pipeline(service_spec(internal=internal, external=external))
        p = svc_eng.inspect_pipeline("web")
    assert p.service_state == "failed"
    assert f"cannot listen on 127.0.0.1:{external} (service.externalPort)" in p.service_detail


@pytest.mark.parametrize("service, words", [
    ({"internalPort": 8080}, "service.externalPort: missing"),
    ({"internalPort": 8080, "externalPort": 8080}, "also the internalPort"),
    ({"externalPort": 30080}, "service.internalPort: missing"),
])
def test_service_ports_are_checked_at_create(svc_eng: Engine, service: dict, words: str):
    spec = service_spec(internal=1, external=2) | {"service": service}
    with pytest.raises(SpecError, match=words):
        svc_eng.create_pipeline(spec)
    assert svc_eng.list_pipelines() == []


def test_services_run_with_a_parallelism_of_one(svc_eng: Engine):
    spec = service_spec(internal=18001, external=18002, parallelismSpec={"constant": 2})
    with pytest.raises(SpecError, match="constant parallelism of 1"):
        svc_eng.create_pipeline(spec)


def test_two_services_cannot_share_a_port(svc_eng: Engine):
    a = service_spec("a", internal=18011, external=18012)
    b = service_spec("b", internal=18013, external=18012)
    with pytest.raises(SpecError, match="port 18012 is also used by pipeline"):
        svc_eng.create_pipelines([("a.json", a), ("b.json", b)])
    assert svc_eng.list_pipelines() == []
