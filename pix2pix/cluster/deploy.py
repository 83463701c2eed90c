"""``pix2pix cluster deploy``: create or update the input repos and the pipelines on pachd.

Idempotent: a repo that exists is updated in place (``update=True``), a pipeline that exists is
updated (a new pipeline version; pachd reprocesses only what changed), one that does not is
created. Pipelines go in dependency order, so each one's inputs exist when pachd checks them::

    training ──> checkpoint ──> model ──> evaluate_model <── test_pairs
                                  │ (model@production, moved by `cluster promote`)
    input_images ──> preprocess_images ──> generate_images      serve_model
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import grpc
from google.protobuf import json_format
from python_pachyderm.proto.v2.pps import pps_pb2

from pix2pix.cluster.connection import Cluster, rpc_error
from pix2pix.errors import SpecError, UsageError
from pix2pix.pachyderm import dag
from pix2pix.pachyderm.spec import PipelineSpec, parse_spec
from pix2pix.pachyderm.specfile import load_spec_file

GPU_SUFFIX = "-gpu"
# Descriptions deploy gives the source repos it creates (pachctl list repo shows them).
REPO_DESCRIPTIONS = {
    "training": "Paired A|B training images, and params.yaml at the root: the training options as data",
    "input_images": "Images to translate with the promoted model (model@production)",
    "test_pairs": "Held-out A|B pairs every model commit is scored on (evaluate_model)",
}


@dataclass
class SpecFile:
    """One pipeline spec as read from a file, typed (the same parse as the embedded engine's)."""

    spec: PipelineSpec
    source: Path

    @property
    def name(self) -> str:
        return self.spec.name

    def input_repos(self) -> list[str]:
        return sorted(self.spec.input_repos)


@dataclass
class DeployResult:
    """What deploy did, for the CLI to print."""

    repos_created: list[str] = field(default_factory=list)
    repos_updated: list[str] = field(default_factory=list)
    pipelines_created: list[str] = field(default_factory=list)
    pipelines_updated: list[str] = field(default_factory=list)


def read_spec_file(path: Path) -> list[PipelineSpec]:
    """The specs in one file (JSON or YAML, one object, an array, or ``---``-separated documents),
    each checked against Pachyderm's schema exactly as the embedded engine checks it."""
    return [parse_spec(spec, source=src) for src, spec in load_spec_file(path)]


def load_specs(pipelines_dir: Path, *, gpu: bool = False) -> list[SpecFile]:
    """The pipeline specs of a folder, one per pipeline name, in dependency order.

    ``NAME.json`` is the CPU spec of pipeline NAME and ``NAME-gpu.json`` its GPU variant; other
    ``*.json`` files may hold several specs (a combined file, ``*-gpu.json`` for GPU). Where a
    pipeline is defined more than once, the choice goes, in this order, to its own file over a
    combined one, then to the variant ``gpu`` asks for (the other variant is the fallback).

    Raises:
        UsageError: no folder or no specs. SpecError: an invalid spec, or two equally preferred
            definitions of one pipeline.
    """
    pipelines_dir = Path(pipelines_dir)
    if not pipelines_dir.is_dir():
        raise UsageError(f"pipelines folder {pipelines_dir} not found; pass --pipelines DIR "
                         "(the project's pipelines/ holds the six specs)")
    chosen: dict[str, tuple[tuple[int, int], SpecFile]] = {}
    for path in sorted(pipelines_dir.glob("*.json")):
        is_gpu = path.stem.endswith(GPU_SUFFIX)
        base = path.stem[: -len(GPU_SUFFIX)] if is_gpu else path.stem
        for spec in read_spec_file(path):
            name = spec.name
            rank = (0 if name == base else 1, 0 if is_gpu == gpu else 1)
            if name in chosen:
                best, other = chosen[name]
                if rank == best:
                    raise SpecError(f"{path}: pipeline {name!r} is also defined in {other.source}; "
                                    "keep one spec per pipeline and variant in the folder")
                if rank > best:
                    continue
            chosen[name] = (rank, SpecFile(spec=spec, source=path))
    if not chosen:
        raise UsageError(f"{pipelines_dir}: no pipeline specs (*.json) found")
    return order_specs([spec for _, spec in chosen.values()])


def order_specs(specs: Iterable[SpecFile]) -> list[SpecFile]:
    """Topological order: a pipeline after every pipeline whose output repo it reads."""
    by_name = {s.name: s for s in specs}
    graph = {n: s.spec.input_repos for n, s in by_name.items()}
    loop = dag.cycle(graph)
    if loop:
        raise SpecError(f"{by_name[loop[0]].source}: pipelines form a cycle: {' -> '.join(loop)}")
    return [by_name[n] for n in dag.ordered(graph)]


def source_repos(specs: list[SpecFile]) -> list[str]:
    """Input repos no pipeline writes: the ones users put data into (training, input_images)."""
    outputs = {s.name for s in specs}
    return sorted({r for s in specs for r in s.input_repos()} - outputs)


def to_request(spec: SpecFile, *, update: bool) -> pps_pb2.CreatePipelineRequest:
    """The CreatePipelineRequest pachctl would send for this spec (``pachctl create pipeline -f``)."""
    try:
        req = json_format.ParseDict(spec.spec.raw, pps_pb2.CreatePipelineRequest())
    except json_format.ParseError as e:
        raise SpecError(f"{spec.source}: pipeline {spec.name!r}: {e}") from None
    req.update = update
    return req


def deploy(cluster: Cluster, *, pipelines_dir: Path, gpu: bool = False,
           repo_descriptions: dict[str, str] | None = None) -> DeployResult:
    """Create or update the source repos and every pipeline of ``pipelines_dir`` on ``cluster``."""
    specs = load_specs(pipelines_dir, gpu=gpu)
    requests = [(s, to_request(s, update=False)) for s in specs]  # parse all before touching pachd
    result = DeployResult()
    client = cluster.client
    for repo in source_repos(specs):
        with cluster.rpc(f"repo {repo!r}"):
            existing = _exists(lambda: client.inspect_repo(repo))
            exists = existing is not None
            description = (repo_descriptions or REPO_DESCRIPTIONS).get(repo)
            if description is None and exists:
                description = existing.description  # keep what the user wrote
            client.create_repo(repo, description=description or "", update=True)
        (result.repos_updated if exists else result.repos_created).append(repo)
    for spec, req in requests:
        with cluster.rpc(f"pipeline {spec.name!r} ({spec.source.name})"):
            exists = _exists(lambda: list(client.inspect_pipeline(spec.name))) is not None
            # Inspect first, so a cluster that refuses update=True for a new pipeline still works.
            req.update = exists
            client.create_pipeline_from_request(req)
        (result.pipelines_updated if exists else result.pipelines_created).append(spec.name)
    return result


def _exists(call):
    """``call()``'s result, or None where pachd answers NOT_FOUND."""
    try:
        return call()
    except (grpc.RpcError, ConnectionError) as e:
        err = rpc_error(e)
        if err is not None and err.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise

