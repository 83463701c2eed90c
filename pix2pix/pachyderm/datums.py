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
from pix2pix.pachyderm.globs import compile_glob, expand_paths, normalize
from pix2pix.pachyderm.info import DatumInput

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


def pfs_matches(pfs: dict, ic: InputCommit) -> list[Match]:
    """The datums of one pfs input: one Match per path its glob selects, in path order."""
    name = pfs.get("name") or pfs["repo"]
    pattern = normalize(pfs["glob"])
    if not ic.tree or ic.commit is None:
        return []
    out = []
    if pattern == "/":
        files = [(p, h, s) for p, (h, s) in sorted(ic.tree.items())]
        return [Match(name, ic.repo, ic.branch, ic.commit, "/", files)]
    rx = compile_glob(pattern)
    key_expr = pfs.get("joinOn") or pfs.get("groupBy") or ""
    for path in expand_paths(ic.tree):
        m = rx.fullmatch(path)
        if not m:
            continue
        prefix = path + "/"
        files = [(p, h, s) for p, (h, s) in sorted(ic.tree.items()) if p == path or p.startswith(prefix)]
        out.append(Match(name, ic.repo, ic.branch, ic.commit, path, files, _key(key_expr, m)))
    return out


def _key(expr: str, m) -> str:
    """``"$1-$2"`` with the glob's capture groups substituted."""
    if not expr:
        return ""
    out = expr
    for i in range(len(m.groups()), 0, -1):
        out = out.replace(f"${i}", m.group(i) or "")
    return out


def compute(inp: dict, commits: dict[tuple[str, str], InputCommit], *, salt: str) -> list[Datum]:
    """All datums of an input tree, with ids and hashes. ``commits`` maps (repo, branch) to
    what that pfs input reads."""
    combos = _combos(inp, commits)
    datums: dict[str, Datum] = {}
    for matches in combos:
        d = Datum(id=datum_id(matches), matches=matches)
        d.hash = datum_hash(matches, salt)
        for m in matches:
            if m.key:
                d.extra_env[f"PACH_DATUM_{m.name}_JOIN_ON" if _in_join(inp) else
                            f"PACH_DATUM_{m.name}_GROUP_BY"] = m.key
        datums.setdefault(d.id, d)  # a union of the same input twice yields the datum once
    return list(datums.values())


def _in_join(inp: dict) -> bool:
    return bool(inp.get("join"))


def _combos(inp: dict, commits: dict[tuple[str, str], InputCommit]) -> list[list[Match]]:
    if inp.get("pfs"):
        pfs = inp["pfs"]
        ic = commits[(pfs["repo"], pfs.get("branch") or "master")]
        return [[m] for m in pfs_matches(pfs, ic)]
    if inp.get("cross"):
        parts = [_combos(c, commits) for c in inp["cross"]]
        return [[m for part in combo for m in part] for combo in itertools.product(*parts)]
    if inp.get("union"):
        return [c for child in inp["union"] for c in _combos(child, commits)]
    if inp.get("join"):
        return _join(inp["join"], commits)
    if inp.get("group"):
        return _group(inp["group"], commits)
    raise SpecError("input: only pfs, cross, union, join and group inputs run on the embedded "
                    "engine (cron and spout need a real Pachyderm)")


def _keyed(children: list[dict], commits, what: str) -> list[tuple[dict, list[Match]]]:
    out = []
    for child in children:
        if not child.get("pfs"):
            raise SpecError(f"input.{what}: only pfs inputs can be {what}ed on the embedded engine")
        pfs = child["pfs"]
        ic = commits[(pfs["repo"], pfs.get("branch") or "master")]
        out.append((pfs, pfs_matches(pfs, ic)))
    return out


def _join(children: list[dict], commits) -> list[list[Match]]:
    keyed = _keyed(children, commits, "join")
    keys: list[str] = []
    for pfs, matches in keyed:
        for m in matches:
            if m.key not in keys:
                keys.append(m.key)
    out = []
    for key in sorted(keys):
        per_input = [[m for m in matches if m.key == key] for _, matches in keyed]
        present = [bool(ms) for ms in per_input]
        if all(present):
            out.extend([list(c) for c in itertools.product(*per_input)])
        elif any(bool(pfs.get("outerJoin")) and ok for (pfs, _), ok in zip(keyed, present)):
            out.extend([list(c) for c in itertools.product(*[ms for ms in per_input if ms])])
    return out


def _group(children: list[dict], commits) -> list[list[Match]]:
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
