"""``REPO[@REF][:/path]`` as pachctl writes it, and the protobuf Commit it names.

A REF of 32 lower-case hex digits is a commit ID (a Pachyderm global ID); anything else is a branch,
possibly with pachctl's ancestry suffix (``master^``, ``master~2``), which pachd resolves.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from python_pachyderm.proto.v2.pfs import pfs_pb2

from pix2pix.errors import UsageError

COMMIT_ID = re.compile(r"^[0-9a-f]{32}$")
_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")


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
        if self.is_commit_id:
            return pfs_pb2.Commit(id=self.ref, branch=pfs_pb2.Branch(repo=repo), repo=repo)
        return pfs_pb2.Commit(branch=pfs_pb2.Branch(repo=repo, name=self.ref), repo=repo)

    def __str__(self) -> str:
        return f"{self.repo}@{self.ref}" + (f":{self.path}" if self.path != "/" else "")


def parse_ref(text: str, *, what: str = "REPO[@REF][:/path]", allow_path: bool = True,
              default_ref: str = "master") -> Ref:
    """Parse ``repo``, ``repo@branch``, ``repo@<commit id>``, ``repo@ref:/path``.

    Raises:
        UsageError: the text does not have that shape, or has a path where none is allowed.
    """
    repo_ref, sep, path = text.partition(":")
    if sep and not allow_path:
        raise UsageError(f"{text!r}: no :/path allowed here; expected {what}")
    repo, at, ref = repo_ref.partition("@")
    if not _NAME.match(repo or ""):
        raise UsageError(f"{text!r}: repo name {repo!r} must be letters, digits, '_' or '-'; "
                         f"expected {what}")
    if at and not re.match(r"^[a-zA-Z0-9_-]+([~^][0-9]*)*$", ref):
        raise UsageError(f"{text!r}: {ref!r} is neither a branch nor a commit ID; expected {what}")
    if sep:
        path = "/" + path.strip("/") if path.strip("/") else "/"
        if any(part == ".." for part in path.split("/")):
            raise UsageError(f"{text!r}: '..' is not allowed in a repo path")
    return Ref(repo=repo, ref=ref if at else default_ref, path=path if sep else "/")
