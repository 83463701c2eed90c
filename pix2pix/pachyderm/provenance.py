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
import json
from typing import TYPE_CHECKING

from pix2pix.pachyderm.info import ProvenanceNode
from pix2pix.pachyderm.refs import clean_path

if TYPE_CHECKING:
    from pix2pix.pachyderm.engine import Engine


def trace(engine: "Engine", repo: str, ref: str | None, path: str) -> ProvenanceNode:
    """The provenance tree of ``repo@ref:path`` (a file, or a folder: all files under it).
    When several datums wrote the files, the root lists them all and has one child per datum."""
    cid = engine.resolve(repo, ref)
    paths = [f.path for f in engine.walk_files(repo, cid, clean_path(path))]
    nodes = _build(engine, repo, cid, paths, None, {})
    if len(nodes) == 1:
        return nodes[0]
    info = engine.inspect_commit(repo, cid)
    return ProvenanceNode(repo=repo, commit=cid, branch=info.branch, origin=info.origin,
                          paths=paths, pipeline=repo if info.origin == "AUTO" else None,
                          job_id=cid if info.origin == "AUTO" else None, inputs=nodes)


def _build(engine: "Engine", repo: str, cid: str, paths: list[str], input_name: str | None,
           memo: dict) -> list[ProvenanceNode]:
    key = (repo, cid, tuple(paths), input_name)
    if key in memo:
        return memo[key]
    info = engine.inspect_commit(repo, cid)
    if info.origin != "AUTO":
        out = [ProvenanceNode(repo=repo, commit=cid, branch=info.branch, origin=info.origin,
                              paths=paths, input_name=input_name)]
        memo[key] = out
        return out
    store = engine.store
    by_datum: dict[str, list[str]] = {}
    for p in paths:
        for r in store.q("SELECT datum_id FROM datum_outputs WHERE pipeline=? AND job_id=? AND path=?",
                         (repo, cid, p)):
            by_datum.setdefault(r["datum_id"], []).append(p)
    out = []
    for did, dpaths in sorted(by_datum.items()):
        row = store.q1("SELECT inputs FROM datums WHERE pipeline=? AND job_id=? AND id=?",
                       (repo, cid, did))
        node = ProvenanceNode(repo=repo, commit=cid, branch=info.branch, origin="AUTO",
                              paths=dpaths, pipeline=repo, job_id=cid, datum_id=did,
                              input_name=input_name)
        for inp in json.loads(row["inputs"]) if row else []:
            node.inputs += _build(engine, inp["repo"], inp["commit"], inp["files"], inp["name"], memo)
        out.append(node)
    if not out:  # a commit made outside a job (should not happen): show it without parents
        out = [ProvenanceNode(repo=repo, commit=cid, branch=info.branch, origin="AUTO",
                              paths=paths, pipeline=repo, input_name=input_name)]
    memo[key] = out
    return out


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
