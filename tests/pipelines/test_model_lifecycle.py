"""The model's life in the shipped DAG: every model evaluated, promoted or rolled back with one
command (`create branch model@production --head`), generation and serving following it with
provenance naming it, and bad training data reverted. The six specs of pipelines/ run with
their inputs, branches, service and annotations as shipped; only each transform is a small
stand-in (no TensorFlow) that leaves a trace of what it read."""
from __future__ import annotations

import http.client
import json
import socket
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from pix2pix.demo.run import with_service_ports
from pix2pix.pachyderm.engine import Engine
from pix2pix.pachyderm.specfile import load_spec_file

REPO = Path(__file__).resolve().parents[2]
STAGES = ("checkpoint", "model", "evaluate_model", "preprocess_images", "generate_images",
          "serve_model")

STANDIN = {
    "checkpoint": r"""
import hashlib, pathlib
root = pathlib.Path('/pfs/training')
names = sorted(p.relative_to(root).as_posix() for p in root.rglob('*') if p.is_file())
h = hashlib.sha256()
for n in names:
    h.update(n.encode()); h.update((root / n).read_bytes())
pathlib.Path('/pfs/out/checkpoint.txt').write_text(h.hexdigest()[:12] + ' ' + ','.join(names))
""",
    "model": r"""
import pathlib
ck = pathlib.Path('/pfs/checkpoint/checkpoint.txt').read_text()
pathlib.Path('/pfs/out/model.txt').write_text('model<' + ck + '>')
""",
    # as `pix2pix test` does: metrics.json with the model and test-data commits from the env
    "evaluate_model": r"""
import json, os, pathlib
model = pathlib.Path('/pfs/model/model.txt').read_text()
pairs = sorted(p.name for p in pathlib.Path('/pfs/test_pairs').rglob('*') if p.is_file())
l1 = 0.5 if 'bad' in model else 0.1
json.dump({'count': len(pairs), 'mean': {'l1': l1, 'psnr': 10.0, 'ssim': 0.5},
           'model_commit': os.environ['model_COMMIT'],
           'test_data_commit': os.environ['test_pairs_COMMIT']},
          open('/pfs/out/metrics.json', 'w'))
pathlib.Path('/pfs/out/index.html').write_text('<table></table>')
""",
    "preprocess_images": r"""
import pathlib
for p in sorted(pathlib.Path('/pfs/input_images').rglob('*')):
    if p.is_file():
        pathlib.Path('/pfs/out', p.name).write_bytes(b'pre:' + p.read_bytes())
""",
    "generate_images": r"""
import pathlib
model = pathlib.Path('/pfs/model/model.txt').read_bytes()
for p in sorted(pathlib.Path('/pfs/preprocess_images').rglob('*')):
    if p.is_file():
        pathlib.Path('/pfs/out', p.name).write_bytes(b'gen[' + model + b']' + p.read_bytes())
""",
    # serves its model's trace and commit; reloads on SIGHUP from /pfs/.env, as pix2pix serve
    "serve_model": r"""
import http.server, os, signal, sys, threading
port = int(sys.argv[1])
state = {}
def load(*_):
    env = dict(os.environ)
    try:
        for line in open(os.path.join(os.path.dirname(env['model'].rstrip('/')), '.env')):
            k, _, v = line.rstrip('\n').partition('=')
            env[k] = v
    except OSError:
        pass
    state['body'] = open(os.path.join(env['model'], 'model.txt'), 'rb').read()
    state['commit'] = env['model_COMMIT']
load()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = state['body']
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.send_header('X-Model-Commit', state['commit'])
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(('127.0.0.1', port), H)
signal.signal(signal.SIGHUP, load)
signal.signal(signal.SIGTERM, lambda *a: threading.Thread(target=srv.shutdown).start())
srv.serve_forever()
""",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shipped_dag(external: int, internal: int) -> list[tuple[str, dict]]:
    """The six specs of pipelines/, each transform replaced by its stand-in."""
    out = []
    for stage in STAGES:
        for src, spec in load_spec_file(REPO / "pipelines" / f"{stage}.json"):
            if stage == "serve_model":
                spec = with_service_ports(spec, external=external, internal=internal)
            cmd = [sys.executable, "-c", STANDIN[stage]]
            if stage == "serve_model":
                cmd.append(str(internal))
            spec["transform"] = {"cmd": cmd}
            out.append((src, spec))
    return out


@pytest.fixture
def dag(tmp_path: Path):
    """(engine, cli, service port) with the repos and the six pipelines created."""
    state = tmp_path / "state"
    eng = Engine(state)
    for repo in ("training", "input_images", "test_pairs"):
        eng.create_repo(repo)
    external = _free_port()
    eng.create_pipelines(shipped_dag(external, _free_port()))
    runner = CliRunner()

    def cli(*args: str) -> str:
        from pix2pix.cli import cli as group
        r = runner.invoke(group, list(args), env={"PIX2PIX_STATE": str(state)})
        assert r.exit_code == 0, (args, r.output, r.exception)
        return r.stdout
    yield eng, cli, external
    for p in eng.list_pipelines():
        eng.delete_pipeline(p.name, force=True)


def put(eng: Engine, repo: str, files: dict[str, str]) -> str:
    with eng.commit(repo) as c:
        for path, text in files.items():
            c.put_file(path, text.encode())
    return c.id


def served(port: int) -> tuple[str, str]:
    """(model commit, model trace) the service answers with."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", "/")
        r = conn.getresponse()
        return r.getheader("X-Model-Commit", ""), r.read().decode()
    finally:
        conn.close()


def serves(port: int, commit: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got, trace = served(port)
            if got == commit:
                return trace
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the service never answered with model@{commit}")


def jobs(eng: Engine, pipeline: str) -> list[str]:
    return [j.id for j in eng.list_jobs(pipeline) if j.state == "success" and j.total]


def model_of(eng: Engine, path: str) -> str:
    """The model commit the provenance of generate_images@master:<path> names."""
    node = eng.provenance("generate_images", "master", path)
    return next(n.commit for n in node.inputs if n.repo == "model")


@pytest.mark.slow
def test_evaluate_promote_roll_back_and_revert_bad_training_data(dag):
    eng, cli, port = dag
    put(eng, "test_pairs", {"/0.png": "pair0", "/1.png": "pair1"})
    good = put(eng, "training", {"/train/a.png": "a", "/params.yaml": "model: {ngf: 8}\n"})
    m1 = eng.inspect_branch("model", "master").head
    assert m1 == good  # model@master comes from this training commit (one commit set)
    put(eng, "input_images", {"/cat.png": "cat"})
    # evaluated at once; nothing generated or served until a model is promoted
    assert eng.list_files("generate_images", "master") == []
    assert eng.inspect_pipeline("serve_model").service_state == "waiting"
    models = json.loads(cli("list", "model", "-o", "json"))
    assert [(m["commit"], m["branches"], m["metrics"]["l1"], m["options"]) for m in models] == \
        [(m1, ["master"], 0.1, {"model": {"ngf": 8}})]
    assert models[0]["training_commit"] == good and models[0]["checkpoint_commit"] == m1

    # promote: one command; generation and serving follow, provenance names the model
    cli("create", "branch", "model@production", "--head", m1)
    assert model_of(eng, "/cat.png") == m1
    assert "a.png" in serves(port, m1)

    # bad training data: a new model is made and evaluated, but production keeps m1
    generated = jobs(eng, "generate_images")
    bad = put(eng, "training", {"/train/bad.png": "corrupt"})
    m2 = eng.inspect_branch("model", "master").head
    assert m2 == bad and jobs(eng, "generate_images") == generated
    assert served(port)[0] == m1
    table = cli("list", "model")
    assert table.splitlines()[1].split()[0] == m2 and "L1 0.5000" in table.splitlines()[1]
    assert "production" in next(line for line in table.splitlines() if line.startswith(m1))

    # promoting it, then rolling back: the same one command each way; nothing retrains
    trained = jobs(eng, "checkpoint")
    cli("create", "branch", "model@production", "--head", m2)
    assert model_of(eng, "/cat.png") == m2 and "bad.png" in serves(port, m2)
    cli("create", "branch", "model@production", "--head", m1)
    assert model_of(eng, "/cat.png") == m1 and "bad.png" not in serves(port, m1)
    assert jobs(eng, "checkpoint") == trained
    assert eng.get_file("generate_images", "master", "/cat.png").startswith(b"gen[model<")

    # reverting the bad commit (a new commit without the bad file) retrains and re-evaluates;
    # production stays on m1 until the new model is promoted
    cli("delete", "file", "training@master:/train/bad.png")
    fixed = eng.inspect_branch("training", "master").head
    m3 = eng.inspect_branch("model", "master").head
    assert m3 == fixed and len(jobs(eng, "checkpoint")) == len(trained) + 1
    assert eng.get_file("model", m3, "/model.txt") == eng.get_file("model", m1, "/model.txt")
    rows = {m["commit"]: m for m in json.loads(cli("list", "model", "--json"))}
    assert rows[m3]["metrics"]["l1"] == 0.1 and rows[m3]["training_commit"] == fixed
    assert rows[m1]["branches"] == ["production"] and served(port)[0] == m1
