"""From an input spec and the file trees of its input commits to the list of datums.

    pfs   glob matches -> one datum per matched path (the file, or the folder and all under it)
    cross [A, B]       -> every pair (a, b)                      len = |A| * |B|
    union [A, B]       -> A's datums, then B's                   len = |A| + |B|
    join  [A, B]       -> pairs whose glob captures (joinOn "$1") agree; outerJoin keeps the
                          unmatched datums of that side too
    group [A, B]       -> one datum per groupBy key with every match of every input with that key

A datum's ``id`` depends on its input names and file paths (stable across content changes, as
``list datum`` shows it); its ``hash`` adds the file contents and the pipeline's salt, and is what
decides whether a datum can be skipped.
"""
from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field

from pix2pix.errors import SpecError
from pix2pix.pachyderm.globs import compile_glob, expand, expand_paths, normalize
from pix2pix.pachyderm.info import DatumInput
from pix2pix.pachyderm.spec import Input, PfsInput

Tree = dict[str, tuple[str, int]]  # path -> (sha256, size)


@dataclass
class Match:
    """One input's part of a datum."""

    name: str
    repo: str
    branch: str
    commit: str
    glob_path: str
    files: list[tuple[str, str, int]]  # (path, sha256, size)
    key: str = ""  # joinOn / groupBy value
    key_env: str = ""  # PACH_DATUM_<name>_JOIN_ON or _GROUP_BY, once a join or group used the key

    def as_input(self) -> DatumInput:
        return DatumInput(name=self.name, repo=self.repo, branch=self.branch, commit=self.commit,
                          glob_path=self.glob_path, files=[p for p, _, _ in self.files])


@dataclass
class Datum:
    id: str
    matches: list[Match]
    hash: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)


@dataclass
class InputCommit:
    """The commit a pfs input reads in this job, and its tree (empty when the branch is empty)."""

    repo: str
    branch: str
    commit: str | None
    tree: Tree


def pfs_matches(pfs: PfsInput, ic: InputCommit) -> list[Match]:
    """The datums of one pfs input: one Match per path its glob selects, in path order."""
    pattern = normalize(pfs.glob)
    if not ic.tree or ic.commit is None:
        return []
    if pattern == "/":
        files = [(p, h, s) for p, (h, s) in sorted(ic.tree.items())]
        return [Match(pfs.name, ic.repo, ic.branch, ic.commit, "/", files, _key(pfs.key, None))]
    rx = compile_glob(pattern)
    out = []
    for path in expand_paths(ic.tree):
        m = rx.fullmatch(path)
        if not m:
            continue
        prefix = path + "/"
        files = [(p, h, s) for p, (h, s) in sorted(ic.tree.items()) if p == path or p.startswith(prefix)]
        out.append(Match(pfs.name, ic.repo, ic.branch, ic.commit, path, files, _key(pfs.key, m)))
    return out


def _key(expr: str, m) -> str:
    """``"$1-$2"`` with the glob's capture groups substituted, as pachd's worker does it."""
    return expand(m, expr) if expr else ""


def compute(inp: Input, commits: dict[tuple[str, str], InputCommit], *, salt: str) -> list[Datum]:
    """All datums of an input tree, with ids and hashes. ``commits`` maps (repo, branch) to
    what that pfs input reads."""
    datums: dict[str, Datum] = {}
    for matches in _combos(inp, commits):
        d = Datum(id=datum_id(matches), matches=matches, hash=datum_hash(matches, salt))
        d.extra_env.update({m.key_env: m.key for m in matches if m.key_env})
        datums.setdefault(d.id, d)  # a union of the same input twice yields the datum once
    return list(datums.values())


def _combos(inp: Input, commits: dict[tuple[str, str], InputCommit]) -> list[list[Match]]:
    if inp.pfs is not None:
        return [[m] for m in pfs_matches(inp.pfs, commits[(inp.pfs.qrepo, inp.pfs.branch)])]
    if inp.kind == "cross":
        parts = [_combos(c, commits) for c in inp.children]
        return [[m for part in combo for m in part] for combo in itertools.product(*parts)]
    if inp.kind == "union":
        return [c for child in inp.children for c in _combos(child, commits)]
    if inp.kind == "join":
        return _join(inp.children, commits)
    if inp.kind == "group":
        return _group(inp.children, commits)
    raise SpecError(f"{inp.field}: a {inp.kind} input has no datums (a spout has no input)")


def _keyed(children: tuple[Input, ...], commits, what: str) -> list[tuple[PfsInput, list[Match]]]:
    out = []
    env = "JOIN_ON" if what == "join" else "GROUP_BY"
    for child in children:
        if child.pfs is None:
            raise SpecError(f"input.{what}: only pfs inputs can be {what}ed on the embedded engine")
        pfs = child.pfs
        matches = pfs_matches(pfs, commits[(pfs.qrepo, pfs.branch)])
        for m in matches:
            if m.key:
                m.key_env = f"PACH_DATUM_{m.name}_{env}"
        out.append((pfs, matches))
    return out


def _join(children: tuple[Input, ...], commits) -> list[list[Match]]:
    keyed = _keyed(children, commits, "join")
    keys: list[str] = []
    for _, matches in keyed:
        for m in matches:
            if m.key not in keys:
                keys.append(m.key)
    out = []
    for key in sorted(keys):
        per_input = [[m for m in matches if m.key == key] for _, matches in keyed]
        present = [bool(ms) for ms in per_input]
        if all(present):
            out.extend([list(c) for c in itertools.product(*per_input)])
        elif any(pfs.outer_join and ok for (pfs, _), ok in zip(keyed, present)):
            out.extend([list(c) for c in itertools.product(*[ms for ms in per_input if ms])])
    return out


def _group(children: tuple[Input, ...], commits) -> list[list[Match]]:
    keyed = _keyed(children, commits, "group")
    groups: dict[str, list[Match]] = {}
    for _, matches in keyed:
        for m in matches:
            groups.setdefault(m.key, []).append(m)
    return [groups[k] for k in sorted(groups)]


def datum_id(matches: list[Match]) -> str:
    """Stable per set of input paths (not contents): 64 hex digits, as Pachyderm's datum IDs."""
    h = hashlib.sha256()
    for m in matches:
        h.update(f"{m.name}\x00{m.glob_path}\x00".encode())
        for p, _, _ in m.files:
            h.update(p.encode() + b"\x00")
    return h.hexdigest()


def datum_hash(matches: list[Match], salt: str) -> str:
    """Changes when an input's name, paths or contents change, or the pipeline's salt does."""
    h = hashlib.sha256(salt.encode() + b"\x00")
    for m in matches:
        h.update(f"{m.name}\x00{m.repo}\x00{m.glob_path}\x00".encode())
        for p, digest, _ in m.files:
            h.update(f"{p}\x00{digest}\x00".encode())
    return h.hexdigest()
