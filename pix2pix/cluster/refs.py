"""``REPO[@REF][:/path]`` as pachctl writes it (parsed by the engine's own
:func:`pix2pix.pachyderm.refs.parse_ref`, so both paths accept the same text), and the protobuf
Commit it names for pachd.

A REF of 32 lower-case hex digits is a commit ID (a Pachyderm global ID); anything else is a branch,
possibly with pachctl's ancestry suffix (``master^``, ``master~2``), which pachd resolves.
"""
from __future__ import annotations

from dataclasses import dataclass

from python_pachyderm.proto.v2.pfs import pfs_pb2

from pix2pix.pachyderm import refs as engine_refs

COMMIT_ID = engine_refs.COMMIT_ID


@dataclass(frozen=True)
class Ref:
    """A repo, a branch or commit in it, and a path (``/`` when none was given)."""

    repo: str
    ref: str = "master"
    path: str = "/"

    @property
    def is_commit_id(self) -> bool:
        return bool(COMMIT_ID.match(self.ref))

    def commit(self) -> pfs_pb2.Commit:
        """The pfs Commit message: by ID for a global ID, else by branch (pachd resolves it)."""
        repo = pfs_pb2.Repo(name=self.repo, type="user", project=pfs_pb2.Project(name="default"))
        # A commit ID, and ancestry such as master^2, go in Commit.id (python-pachyderm's
        # commit_from does the same; pachd resolves the ancestry there).
        if self.is_commit_id or any(ch in self.ref for ch in "^~"):
            return pfs_pb2.Commit(id=self.ref, branch=pfs_pb2.Branch(repo=repo), repo=repo)
        return pfs_pb2.Commit(branch=pfs_pb2.Branch(repo=repo, name=self.ref), repo=repo)

    def __str__(self) -> str:
        return f"{self.repo}@{self.ref}" + (f":{self.path}" if self.path != "/" else "")


def parse_ref(text: str, *, what: str = "REPO[@REF][:/path]", allow_path: bool = True,
              default_ref: str = "master") -> Ref:
    """Parse ``repo``, ``repo@branch``, ``repo@<commit id>``, ``repo@ref:/path``.

    Raises:
        UsageError: the text does not have that shape, has a path where none is allowed, or a
            path that could escape the repo (``..``).
    """
    r = engine_refs.parse_ref(text, allow_path=allow_path, what=what)
    return Ref(repo=r.repo, ref=r.ref or default_ref, path=r.path or "/")
