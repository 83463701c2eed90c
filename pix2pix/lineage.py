"""The model registry, read from Pachyderm's own records: every commit of the ``model`` repo
with what made it and how good it is::

    model@M ──provenance──> checkpoint@M ──provenance──> training@T   (/params.yaml: the options)
       ▲
       └── evaluate_model@E (provenance model@M, test_pairs@P; /metrics.json: L1, PSNR, SSIM)
    branches of model whose head is M: master, production, ...

The same rows come from the embedded engine (:class:`EngineReader`) and from a cluster
(``pix2pix.cluster.lineage.ClusterReader``), so ``pix2pix list model``, ``pix2pix cluster
models`` and the page of ``pix2pix serve --lineage`` agree.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Protocol

import yaml

MODEL_REPO = "model"
CHECKPOINT_REPO = "checkpoint"
TRAINING_REPO = "training"
EVAL_REPO = "evaluate_model"
PARAMS_FILE = "/params.yaml"
METRICS_FILE = "/metrics.json"


@dataclass
class CommitRecord:
    """What the registry needs of one commit (engine or cluster)."""

    repo: str
    id: str
    branch: str
    started: Optional[float]
    finished: Optional[float]
    provenance: list[tuple[str, str]] = field(default_factory=list)  # (repo, commit)
    error: str = ""
    size: Optional[int] = None  # bytes of files (None: not known)


class Reader(Protocol):
    """Read access to a Pachyderm (the embedded engine or a cluster)."""

    def commits(self, repo: str) -> list[CommitRecord]:
        """Every commit of a repo, newest first ([] when the repo does not exist)."""

    def commit(self, repo: str, commit_id: str) -> Optional[CommitRecord]:
        """One commit, or None."""

    def heads(self, repo: str) -> dict[str, Optional[str]]:
        """Branch name -> head commit ID."""

    def read(self, repo: str, commit_id: str, path: str) -> Optional[bytes]:
        """A file's bytes, or None when it is not there."""


@dataclass
class ModelEntry:
    """One model commit: when, from what (``provenance``: repo -> commit of every ancestor,
    e.g. checkpoint and training), with which training options, how good, and which branches
    point at it."""

    commit: str
    repo: str
    branch: str  # the branch it was made on
    created: Optional[float]
    branches: list[str] = field(default_factory=list)
    provenance: dict[str, str] = field(default_factory=dict)
    options: Optional[dict[str, Any]] = None  # params.yaml of the training commit
    metrics: Optional[dict[str, Any]] = None  # metrics.json's "mean": l1, psnr, ssim
    evaluated_images: Optional[int] = None
    evaluation_commit: Optional[str] = None
    test_data_commit: Optional[str] = None
    error: str = ""  # the model commit finished with an error (its job failed)

    @property
    def checkpoint_commit(self) -> Optional[str]:
        return self.provenance.get(CHECKPOINT_REPO)

    @property
    def training_commit(self) -> Optional[str]:
        return self.provenance.get(TRAINING_REPO)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "checkpoint_commit": self.checkpoint_commit,
                "training_commit": self.training_commit}

    def model_info(self) -> dict[str, Any]:
        """The model info ``pix2pix serve`` shows on its page and in /info."""
        metrics = None
        if self.metrics is not None:
            metrics = {"mean": self.metrics, "count": self.evaluated_images,
                       "evaluation_commit": self.evaluation_commit,
                       "test_data_commit": self.test_data_commit}
        provenance: dict[str, Any] = dict(self.provenance)
        if self.options is not None:
            provenance["params.yaml"] = self.options
        return {"commit": self.commit, "repo": self.repo,
                "branch": ", ".join(self.branches) or self.branch,
                "provenance": provenance, "metrics": metrics}


def list_models(reader: Reader, *, model_repo: str = MODEL_REPO,
                eval_repo: str = EVAL_REPO) -> list[ModelEntry]:
    """Every commit of ``model_repo`` that holds a model (or failed to), newest first, with its
    lineage and metrics. Empty commits (a branch's first commit, a pipeline's first job on an
    empty input) are left out."""
    heads = reader.heads(model_repo)
    evaluations = _evaluations(reader, model_repo, eval_repo)
    return [_entry(reader, c, heads, evaluations) for c in reader.commits(model_repo)
            if c.error or c.size != 0]


def describe_model(reader: Reader, commit_id: str, *, model_repo: str = MODEL_REPO,
                   eval_repo: str = EVAL_REPO) -> Optional[ModelEntry]:
    """One model commit (None when ``model_repo`` has no such commit)."""
    c = reader.commit(model_repo, commit_id)
    if c is None:
        return None
    return _entry(reader, c, reader.heads(model_repo), _evaluations(reader, model_repo, eval_repo))


def _entry(reader: Reader, c: CommitRecord, heads: dict[str, Optional[str]],
           evaluations: dict[str, tuple[CommitRecord, dict]]) -> ModelEntry:
    entry = ModelEntry(commit=c.id, repo=c.repo, branch=c.branch, created=c.finished or c.started,
                       branches=sorted(b for b, h in heads.items() if h == c.id),
                       provenance=_ancestors(reader, c), error=c.error)
    training = entry.training_commit
    if training:
        raw = reader.read(TRAINING_REPO, training, PARAMS_FILE)
        if raw is not None:
            try:
                loaded = yaml.safe_load(raw)
                entry.options = loaded if isinstance(loaded, dict) else None
            except yaml.YAMLError:
                entry.options = None
    found = evaluations.get(c.id)
    if found is not None:
        ev, metrics = found
        entry.metrics = metrics.get("mean")
        entry.evaluated_images = metrics.get("count")
        entry.evaluation_commit = ev.id
        entry.test_data_commit = metrics.get("test_data_commit") or next(
            (cid for repo, cid in ev.provenance if repo != c.repo), None)
    return entry


def _ancestors(reader: Reader, c: CommitRecord) -> dict[str, str]:
    """repo -> commit of every commit upstream of ``c`` (nearest first wins)."""
    out: dict[str, str] = {}
    todo = list(c.provenance)
    while todo:
        repo, cid = todo.pop(0)
        if repo in out:
            continue
        out[repo] = cid
        up = reader.commit(repo, cid)
        if up is not None:
            todo += up.provenance
    return out


def _evaluations(reader: Reader, model_repo: str,
                 eval_repo: str) -> dict[str, tuple[CommitRecord, dict]]:
    """model commit -> (the newest finished evaluation of it, its metrics.json)."""
    out: dict[str, tuple[CommitRecord, dict]] = {}
    for ev in reader.commits(eval_repo):  # newest first: the first found wins
        if ev.finished is None or ev.error:
            continue
        raw = reader.read(eval_repo, ev.id, METRICS_FILE)
        if raw is None:
            continue
        try:
            metrics = json.loads(raw)
        except ValueError:
            continue
        model = metrics.get("model_commit") or next(
            (cid for repo, cid in ev.provenance if repo == model_repo), None)
        if model and model not in out:
            out[model] = (ev, metrics)
    return out


class EngineReader:
    """:class:`Reader` over the embedded engine."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self._repos = {r.name for r in engine.list_repos()}

    def commits(self, repo: str) -> list[CommitRecord]:
        if repo not in self._repos:
            return []
        return [_record(c) for c in self.engine.list_commits(repo)]

    def commit(self, repo: str, commit_id: str) -> Optional[CommitRecord]:
        if repo not in self._repos or not self.engine.store.commit_exists(repo, commit_id):
            return None
        return _record(self.engine.inspect_commit(repo, commit_id))

    def heads(self, repo: str) -> dict[str, Optional[str]]:
        if repo not in self._repos:
            return {}
        return {b.name: b.head for b in self.engine.list_branches(repo)}

    def read(self, repo: str, commit_id: str, path: str) -> Optional[bytes]:
        from pix2pix.errors import NotFoundError
        if repo not in self._repos:
            return None
        try:
            return self.engine.get_file(repo, commit_id, path)
        except NotFoundError:
            return None


def _record(c) -> CommitRecord:
    return CommitRecord(repo=c.repo, id=c.id, branch=c.branch, started=c.started,
                        finished=c.finished, provenance=[(p.repo, p.commit) for p in c.provenance],
                        error=c.error, size=c.size)


def metrics_summary(metrics: Optional[dict[str, Any]]) -> str:
    """``L1 0.1784 PSNR 13.03 SSIM 0.235`` (``-`` when not evaluated)."""
    if not metrics:
        return "-"
    parts = []
    for key, label, fmt in (("l1", "L1", ".4f"), ("psnr", "PSNR", ".2f"), ("ssim", "SSIM", ".3f")):
        v = metrics.get(key)
        if isinstance(v, (int, float)):
            parts.append(f"{label} {v:{fmt}}")
    return " ".join(parts) or "-"


def options_summary(options: Optional[dict[str, Any]], limit: int = 60) -> str:
    """``model.ngf=8 train.max_steps=300 ...`` from params.yaml (``-`` when there is none)."""
    if not options:
        return "-"
    flat: list[str] = []

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            flat.append(f"{prefix}={node}")
    walk("", options)
    text = " ".join(flat)
    return text if len(text) <= limit else text[:limit - 3] + "..."
