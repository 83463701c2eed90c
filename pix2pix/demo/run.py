"""``pix2pix demo``: the whole product on one machine, through the embedded engine.

    test_pairs ─────────────────────────────┐ (cross)
    training ──▶ checkpoint ──▶ model@master ──▶ evaluate_model   (metrics.json, index.html)
                                  │
                 create branch model@production --head <model commit>   (the promotion)
                                  ▼
    input_images ──▶ preprocess_images ──▶ generate_images      serve_model (a service)

It creates the three input repos and the six pipelines from ``pipelines/``, commits held-out
pairs into ``test_pairs``, a small paired dataset plus its ``params.yaml`` into ``training`` (so
``checkpoint`` trains, ``model`` exports and ``evaluate_model`` scores it), promotes the model
to branch ``production`` (so ``serve_model`` serves it), commits label maps into
``input_images`` (so ``preprocess_images`` and ``generate_images`` run), writes an HTML page of
inputs and outputs, prints the provenance of one generated image, checks the service answers,
and prints its URL and a curl line. Running it again on the same state re-uses every datum that
did not change.
"""
from __future__ import annotations

import http.client
import json
import shlex
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import yaml
from PIL import Image

from pix2pix.demo import synthetic
from pix2pix.data.images import is_image_file
from pix2pix.demo.report import Row, write_page
from pix2pix.errors import DataError, JobError, UsageError

STAGES = ("checkpoint", "model", "evaluate_model", "preprocess_images", "generate_images",
          "serve_model")
REPOS = ("training", "input_images", "test_pairs")
SERVICE = "serve_model"
SERVICE_READY_S = 300.0  # TensorFlow and the model load on a busy 2-core machine


@dataclass
class DemoConfig:
    """What the demo runs on and how long it trains (`pix2pix demo --help` explains each)."""

    out: Path
    state: Path | None = None  # default: out/state
    data: Path | None = None  # default: synthetic facades
    direction: str = "BtoA"
    pipelines: Path | None = None  # default: the repo's pipelines/
    steps: int = 1200  # keeps the demo under 5 minutes on 2 cores
    train_pairs: int = 200
    images: int = 6
    ngf: int = 16
    seed: int = 0
    port: int = 30501  # serve_model's externalPort: the URL the demo prints
    stop_service: bool = False  # stop serving at the end (default: it serves on in the background)


def default_pipelines_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "pipelines"


def training_params(cfg: DemoConfig) -> dict:
    """The params.yaml committed with the training data: the training options are versioned data."""
    return {
        "model": {"generator": "unet_256", "ngf": cfg.ngf, "ndf": cfg.ngf, "crop_size": 256},
        "data": {"direction": cfg.direction if cfg.data else "BtoA", "load_size": 286},
        "train": {"max_steps": cfg.steps, "batch_size": 1, "seed": cfg.seed,
                  "save_freq": max(cfg.steps, 1), "summary_freq": 0, "keep_checkpoints": 1},
    }


def _stage_inputs(cfg: DemoConfig, work: Path) -> tuple[list[Path], list[Path],
                                                        list[tuple[str, Path, Path | None]]]:
    """Training files, held-out pairs (the test pairs) and (name, input label map, target
    photo) for generation."""
    if cfg.data is not None:
        if not cfg.data.is_dir():
            raise DataError(f"{cfg.data}: --data folder not found")
        files = sorted(p for p in cfg.data.rglob("*") if p.is_file() and is_image_file(p))
        if len(files) < 2:
            raise DataError(f"{cfg.data}: needs at least 2 A|B image files")
        held_out, train = files[:cfg.images], files[cfg.images:] or files
    else:
        train = synthetic.write_pairs(work / "train", count=cfg.train_pairs, seed=cfg.seed)
        held_out = synthetic.write_pairs(work / "held_out", count=cfg.images, seed=cfg.seed + 1)
    queries = []
    qdir = work / "queries"
    qdir.mkdir(parents=True, exist_ok=True)
    for path in held_out:
        pair = np.asarray(Image.open(path).convert("RGB"))
        half = pair.shape[1] // 2
        a, b = pair[:, :half], pair[:, half:]
        src, tgt = (b, a) if (cfg.direction if cfg.data else "BtoA") == "BtoA" else (a, b)
        q, t = qdir / f"{path.stem}.png", qdir / f"{path.stem}-target.png"
        Image.fromarray(src).save(q)
        Image.fromarray(tgt).save(t)
        queries.append((path.stem, q, t))
    return train, list(held_out), queries


def with_service_ports(spec: dict, *, external: int, internal: int) -> dict:
    """A service spec served on ``external`` with its code on ``internal``: the service's
    ports, the ``--port`` of its command and its readiness probe's port all changed."""
    spec = json.loads(json.dumps(spec))
    spec["service"] = {**spec["service"], "internalPort": internal, "externalPort": external}
    cmd = spec["transform"]["cmd"]
    if "--port" in cmd:
        cmd[cmd.index("--port") + 1] = str(internal)
    if spec.get("podPatch"):
        ops = json.loads(spec["podPatch"])
        for op in ops:
            get = (op.get("value") or {}).get("httpGet") if isinstance(op, dict) else None
            if get and "port" in get:
                get["port"] = internal
        spec["podPatch"] = json.dumps(ops)
    return spec


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _check_jobs(engine, commit_set: str, pipelines: tuple[str, ...]) -> None:
    """Fail with the first failed job of a commit set, naming what to run to see why."""
    for job in engine.list_jobs():
        if job.id == commit_set and job.pipeline in pipelines and job.state != "success":
            raise JobError(f"pipeline {job.pipeline} job {job.id} ended {job.state}: {job.reason} "
                           f"(see `pix2pix logs -p {job.pipeline} --job {job.id}`)")


def run_demo(cfg: DemoConfig, *, log: Callable[[str], None] = print) -> Path:
    """Run the whole DAG on the embedded engine; returns the path of the HTML page."""
    from pix2pix.lineage import EngineReader, describe_model, metrics_summary
    from pix2pix.pachyderm.engine import Engine
    from pix2pix.pachyderm.provenance import render
    from pix2pix.pachyderm.specfile import load_spec_file

    if cfg.steps < 1:
        raise UsageError(f"--steps must be at least 1, got {cfg.steps}")
    started = time.monotonic()
    out = cfg.out
    out.mkdir(parents=True, exist_ok=True)
    pipelines = cfg.pipelines or default_pipelines_dir()
    spec_files = [pipelines / f"{s}.json" for s in STAGES]
    missing = [str(p) for p in spec_files if not p.is_file()]
    if missing:
        raise UsageError(f"pipeline spec(s) not found: {', '.join(missing)}; pass --pipelines DIR")
    specs = [(src, with_service_ports(spec, external=cfg.port, internal=free_port())
              if spec["pipeline"]["name"] == SERVICE else spec)
             for path in spec_files for src, spec in load_spec_file(path)]

    work = out / "work"
    shutil.rmtree(work, ignore_errors=True)
    train_files, held_out, queries = _stage_inputs(cfg, work)

    engine = Engine(cfg.state or out / "state")
    existing = {r.name for r in engine.list_repos()}
    for repo in REPOS:
        if repo not in existing:
            engine.create_repo(repo, description="demo input")
    # Pipelines first, then data: each commit below runs what depends on it, synchronously.
    current = {p.name for p in engine.list_pipelines()}
    new = [(src, spec) for src, spec in specs if spec["pipeline"]["name"] not in current]
    old = [(src, spec) for src, spec in specs if spec["pipeline"]["name"] in current]
    if new:
        engine.create_pipelines(new)
    if old:
        engine.create_pipelines(old, update=True)
    if engine.inspect_pipeline(SERVICE).state != "running":
        engine.start_pipeline(SERVICE)  # an earlier demo stopped it
    log(f"created repos {', '.join(REPOS)} and pipelines {', '.join(STAGES)}")

    with engine.commit("test_pairs", "master") as commit:
        for path in held_out:
            commit.put_file(f"/{path.name}", path.read_bytes())
    log(f"test_pairs: committed {len(held_out)} held-out pairs")

    log(f"training: committing {len(train_files)} pairs + params.yaml ({cfg.steps} steps)...")
    t0 = time.monotonic()
    with engine.commit("training", "master") as commit:
        for path in train_files:
            commit.put_file(f"/train/{path.name}", path.read_bytes())
        commit.put_file("/params.yaml", yaml.safe_dump(training_params(cfg), sort_keys=False).encode())
    _check_jobs(engine, commit.id, ("checkpoint", "model", "evaluate_model"))
    model_commit = engine.inspect_branch("model", "master").head
    log(f"checkpoint, model and evaluate_model done in {time.monotonic() - t0:.0f}s")
    entry = describe_model(EngineReader(engine), model_commit)
    log(f"model@{model_commit} on the test pairs: {metrics_summary(entry.metrics if entry else None)}")

    # The promotion: generation and serving read model@production (deferred processing).
    engine.create_branch("model", "production", head=model_commit)
    log(f"promoted: pix2pix create branch model@production --head {model_commit}")

    log(f"input_images: committing {len(queries)} images...")
    t0 = time.monotonic()
    with engine.commit("input_images", "master") as commit:
        for name, query, _ in queries:
            commit.put_file(f"/{name}.png", query.read_bytes())
    _check_jobs(engine, commit.id, ("preprocess_images", "generate_images"))
    log(f"preprocess_images and generate_images done in {time.monotonic() - t0:.0f}s")

    images = out / "images"
    shutil.rmtree(images, ignore_errors=True)
    images.mkdir()
    rows = []
    for name, query, target in queries:
        data = engine.get_file("generate_images", "master", f"/{name}.png")
        output = images / f"{name}-output.png"
        output.write_bytes(data)
        inp, tgt = images / f"{name}-input.png", images / f"{name}-target.png"
        shutil.copyfile(query, inp)
        shutil.copyfile(target, tgt)
        rows.append(Row(name=name, input=inp, output=output, target=tgt))

    example = f"/{queries[0][0]}.png"
    chain = engine.provenance("generate_images", "master", example)
    text = render(chain)
    url = _check_service(engine, model_commit, queries[0][1], log=log)
    curl = (f"curl -s --data-binary @{shlex.quote(str(queries[0][1].resolve()))} -o out.png "
            f"{url}predict")
    elapsed = time.monotonic() - started
    page = write_page(out / "index.html", rows=rows, title="pix2pix demo: label map -> photo",
                      notes=[f"provenance of generate_images@master:{example}\n{text}",
                             f"model@{model_commit} on the test pairs: "
                             f"{metrics_summary(entry.metrics if entry else None)}",
                             f"served at {url} (the page: open it in a browser)\n{curl}",
                             f"finished in {elapsed:.0f}s"])
    log(f"\nprovenance of generate_images@master:{example}\n{text}")
    log(f"\nwrote {page} ({len(rows)} images) in {elapsed:.0f}s")
    log(f"serving model@{model_commit} at {url}\ntry: {curl}")
    if cfg.stop_service:
        engine.stop_pipeline(SERVICE)
        log(f"stopped {SERVICE} (--stop-service); `pix2pix start pipeline {SERVICE}` serves again")
        return page
    # The service's supervisor is detached: it serves on after this command returns, as a
    # service pipeline on pachd does. The last line is checked, not assumed.
    info = engine.inspect_pipeline(SERVICE)
    if info.service_state != "running":
        raise JobError(f"{SERVICE}: state {info.service_state!r} after the check "
                       f"({info.service_detail or 'see pix2pix logs -p ' + SERVICE})")
    log(f"{SERVICE} serves model@{model_commit} at {url} in the background; stop it with "
        f"`pix2pix stop pipeline {SERVICE} --state {shlex.quote(str(engine.state_dir))}`")
    return page


def _check_service(engine, model_commit: str, image: Path, *, log: Callable[[str], None]) -> str:
    """Wait until serve_model answers with ``model_commit``, then translate ``image`` through
    it once (what the printed curl line does). Returns its URL.

    Raises:
        JobError: the service did not come up (its state and where its logs are).
    """
    info = engine.inspect_pipeline(SERVICE)
    url = info.service_url or f"http://127.0.0.1:{info.spec['service']['externalPort']}/"
    port = int(info.spec["service"]["externalPort"])
    deadline = time.monotonic() + SERVICE_READY_S
    served = None
    while time.monotonic() < deadline:
        info = engine.inspect_pipeline(SERVICE)
        if info.service_state == "failed" or str(info.service_state).startswith("stopped"):
            break
        if [c.commit for c in info.service_commits] == [model_commit] and \
                info.service_state == "running":
            served = _post(port, image.read_bytes())
            if served is not None:
                break
        time.sleep(0.5)
    if served is None:
        raise JobError(f"{SERVICE} did not serve model@{model_commit} at {url} within "
                       f"{SERVICE_READY_S:.0f}s (state {info.service_state}"
                       + (f": {info.service_detail}" if info.service_detail else "")
                       + f"); see `pix2pix logs -p {SERVICE}`")
    commit, size = served
    log(f"{SERVICE}: {url}predict answered a {size[0]}x{size[1]} PNG made by model@{commit}")
    return url


def _post(port: int, body: bytes) -> tuple[str, tuple[int, int]] | None:
    """(X-Model-Commit, PNG size) of one POST /predict, or None if it was not a 200 PNG."""
    import io

    from PIL import Image as PILImage
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("POST", "/predict", body, {"Content-Type": "image/png"})
        r = conn.getresponse()
        data = r.read()
        if r.status != 200:
            return None
        with PILImage.open(io.BytesIO(data)) as im:
            return r.getheader("X-Model-Commit", ""), im.size
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
