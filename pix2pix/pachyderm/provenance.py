"""The chain behind an output file, from the datum that wrote it up to the user commits.

    generate_images@X:/a.png            AUTO  job X, datum d1
    ├── preprocess_images@X:/a.png      AUTO  job X, datum d2     (input preprocess_images)
    │   └── input_images@X:/a.png       USER                      (input input_images)
    └── model@M: 4 files                AUTO  job M, datum d3     (input model)
        └── checkpoint@M: 3 files       AUTO  job M, datum d4
            └── training@M: 12 files    USER

Each step is found from stored facts only: the output commit's job (same ID), the datum whose
outputs hold the path, and that datum's recorded input files and commits.
"""
from __future__ import annotations

import dataclasses
import functools

from pix2pix.pachyderm.commits import inspect_commit, resolve
from pix2pix.pachyderm.context import Context
from pix2pix.pachyderm.files import walk_files
from pix2pix.pachyderm.info import ProvenanceNode
from pix2pix.pachyderm.refs import clean_path


def trace(ctx: Context, repo: str, ref: str | None, path: str) -> ProvenanceNode:
    """The provenance tree of ``repo@ref:path`` (a file, or a folder: all files under it).
    When several datums wrote the files, the root lists them all and has one child per datum."""
    cid = resolve(ctx, repo, ref)
    paths = [f.path for f in walk_files(ctx, repo, cid, clean_path(path))]
    nodes = _build(ctx, repo, cid, paths, None, {})
    if len(nodes) == 1:
        return nodes[0]
    info = inspect_commit(ctx, repo, cid)
    auto = info.origin == "AUTO"
    return ProvenanceNode(repo=repo, commit=cid, branch=info.branch, origin=info.origin,
                          paths=paths, pipeline=repo if auto else None,
                          job_id=cid if auto else None, inputs=nodes)


def _build(ctx: Context, repo: str, cid: str, paths: list[str], input_name: str | None,
           memo: dict) -> list[ProvenanceNode]:
    key = (repo, cid, tuple(paths), input_name)
    if key in memo:
        return memo[key]
    info = inspect_commit(ctx, repo, cid)
    node = functools.partial(ProvenanceNode, repo=repo, commit=cid, branch=info.branch,
                             origin=info.origin, input_name=input_name)
    if info.origin != "AUTO":
        memo[key] = [node(paths=paths)]
        return memo[key]
    by_datum: dict[str, list[str]] = {}
    for p in paths:
        for did in ctx.store.datums_writing(repo, cid, p):
            by_datum.setdefault(did, []).append(p)
    out = []
    for did, dpaths in sorted(by_datum.items()):
        n = node(paths=dpaths, pipeline=repo, job_id=cid, datum_id=did)
        for inp in ctx.store.datum_inputs(repo, cid, did):
            n.inputs += _build(ctx, inp.repo, inp.commit, inp.files, inp.name, memo)
        out.append(n)
    # A commit made outside a job (should not happen): show it without parents.
    memo[key] = out or [node(paths=paths, pipeline=repo)]
    return memo[key]


def to_dict(node: ProvenanceNode) -> dict:
    return dataclasses.asdict(node)


def render(node: ProvenanceNode, *, max_paths: int = 4) -> str:
    """A readable tree, one line per step."""
    lines: list[str] = []

    def label(n: ProvenanceNode) -> str:
        if len(n.paths) == 1:
            where = f"{n.repo}@{n.commit}:{n.paths[0]}"
        else:
            shown = ", ".join(n.paths[:max_paths])
            more = f", ... ({len(n.paths)} files)" if len(n.paths) > max_paths else ""
            where = f"{n.repo}@{n.commit}: {shown}{more}"
        bits = [n.origin]
        if n.pipeline:
            bits.append(f"pipeline {n.pipeline}")
        if n.datum_id:
            bits.append(f"datum {n.datum_id[:12]}")
        if n.input_name and n.input_name != n.repo:
            bits.append(f"as input {n.input_name}")
        return f"{where}  ({', '.join(bits)})"

    def walk(n: ProvenanceNode, prefix: str, last: bool, root: bool) -> None:
        if root:
            lines.append(label(n))
            child_prefix = ""
        else:
            lines.append(prefix + ("└── " if last else "├── ") + label(n))
            child_prefix = prefix + ("    " if last else "│   ")
        for i, c in enumerate(n.inputs):
            walk(c, child_prefix, i == len(n.inputs) - 1, False)

    walk(node, "", True, True)
    return "\n".join(lines)
