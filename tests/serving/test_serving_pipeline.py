"""pipelines/serve_model.json on the embedded engine, running the real `pix2pix serve`: the model
on branch production is served on 127.0.0.1:externalPort; promoting another model commit and
rolling back (`pix2pix create branch model@production --head ...`) swap it in place while four
clients keep requesting, with no failed request and every answer made by the model its headers
name; the page's /info names the commit, its branches and its lineage."""
from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pix2pix.demo.run import with_service_ports
from pix2pix.pachyderm.engine import Engine
from pix2pix.pachyderm.specfile import load_spec_file
from tests.serving.conftest import decode_png, image, png_bytes, request, wait_for

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served_models(tmp_path: Path, fake_exports: dict[str, Path]):
    """(engine, cli, url, {op: model commit}): repo model holds the identity export, then the
    invert export; production points at identity; serve_model (as shipped, other ports) runs."""
    state = tmp_path / "state"
    eng = Engine(state)
    eng.create_repo("model")
    commits = {}
    for op in ("identity", "invert"):
        with eng.commit("model") as c:
            c.put_local(fake_exports[op], "/")
        commits[op] = c.id
    eng.create_branch("model", "production", head=commits["identity"])
    external = _free_port()
    (src, spec), = load_spec_file(REPO / "pipelines" / "serve_model.json")
    eng.create_pipeline(with_service_ports(spec, external=external, internal=_free_port()),
                        source=src)
    runner = CliRunner()

    def cli(*args: str) -> str:
        from pix2pix.cli import cli as group
        r = runner.invoke(group, list(args), env={"PIX2PIX_STATE": str(state)})
        assert r.exit_code == 0, (args, r.output, r.exception)
        return r.stdout
    url = f"http://127.0.0.1:{external}/"
    try:
        yield eng, cli, url, commits
    finally:
        eng.delete_pipeline("serve_model")


def _serving(url: str, commit: str) -> bool:
    try:
        r = request(url + "healthz", timeout=5)
    except OSError:
        return False
    return r.status == 200 and r.json().get("commit") == commit


@pytest.mark.slow
def test_promote_and_roll_back_swap_the_served_model_without_a_lost_request(served_models):
    eng, cli, url, commits = served_models
    wait_for(lambda: _serving(url, commits["identity"]), timeout=240, what="the first model")
    x = image(64, 64, seed=5)
    body = png_bytes(x)
    expect = {commits["identity"]: x, commits["invert"]: 255 - x}
    stop = threading.Event()
    log: list[tuple[int, str, bool]] = []

    def client() -> None:
        while not stop.is_set():
            try:
                r = request(url + "predict", "POST", body, {"Content-Type": "image/png"})
            except OSError as e:  # refused or reset: a lost request
                log.append((0, str(e), False))
                continue
            commit = r.headers.get("x-model-commit", "")
            ok = r.status == 200 and commit in expect and np.array_equal(decode_png(r.body),
                                                                        expect[commit])
            log.append((r.status, commit, ok))
            # A pause between a client's requests: four clients back to back saturate both
            # cores, and the reload (loading the new export beside the old) then starved past
            # the timeout in a full -n 2 run. Still hundreds of requests a second.
            time.sleep(0.01)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(1)
        for target in ("invert", "identity"):  # promote, then roll back
            cli("create", "branch", "model@production", "--head", commits[target])
            wait_for(lambda: _serving(url, commits[target]), timeout=240, what=target)
            seen = len(log)
            wait_for(lambda: len(log) > seen + 8, timeout=60, what="answers after the swap")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
    bad = [entry for entry in log if not entry[2]]
    assert bad == [], f"{len(bad)} of {len(log)} requests failed: {bad[:5]}"
    assert {c for _, c, _ in log} == set(commits.values())
    # swapped in place: one process served all three (two SIGHUP reloads), versions 1-3
    status = request(url + "v1/models/pix2pix").json()["model_version_status"]
    assert [s["version"] for s in status][:3] == ["3", "2", "1"]
    info = request(url + "v1/models/pix2pix/info").json()
    assert info["commit"] == commits["identity"] and "production" in info["branch"]
    p = eng.inspect_pipeline("serve_model")
    assert [c.commit for c in p.service_commits] == [commits["identity"]]
    assert p.service_state == "running" and p.service_restarts == 0
    assert [j.state for j in eng.list_jobs("serve_model")] == ["success"] * 3
    listed = json.loads(cli("list", "pipeline", "--json"))
    assert listed[0]["service_url"] == url
