"""pachctl's argument syntax: ``repo``, ``repo@branch``, ``repo@<commit id>``, ``repo@branch^2``,
``repo@ref:/path``, ``project/repo@ref``; qualified names; repo paths that cannot escape
their repo.

    parse_ref("images@master^1:/a/b.png") -> FileRef(repo="images", ref="master^1", path="/a/b.png")
    parse_ref("edges/out@master")         -> FileRef(repo="edges/out", ref="master")

A repo or pipeline outside the default project is named ``project/name`` everywhere in the
engine (pachd's names cannot hold ``/``); in the default project its name is just ``name``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from pix2pix.errors import UsageError

NAME = re.compile(r"^[a-zA-Z0-9_-]{1,63}$")
DEFAULT_PROJECT = "default"
QUALIFIED = re.compile(r"^(?:(?P<project>[a-zA-Z0-9_-]{1,63})/)?(?P<name>[a-zA-Z0-9_-]{1,63})$")
COMMIT_ID = re.compile(r"^[0-9a-f]{32}$")
# A branch name, optionally followed by ancestry: ^ (parent), ^N / ~N (N-th ancestor), repeated.
REF = re.compile(r"^(?P<base>[a-zA-Z0-9_.-]+)(?P<anc>(?:[~^][0-9]*)*)$")


def qualify(project: str | None, name: str) -> str:
    """The engine's name for ``name`` in ``project``: ``name`` in the default project."""
    return name if not project or project == DEFAULT_PROJECT else f"{project}/{name}"


def split_name(qualified: str) -> tuple[str, str]:
    """``"proj/images"`` -> ("proj", "images"); ``"images"`` -> ("default", "images")."""
    project, slash, name = qualified.rpartition("/")
    return (project if slash else DEFAULT_PROJECT), name


@dataclass(frozen=True)
class FileRef:
    """What ``repo@ref:/path`` names. ``ref`` is None when the text has no ``@``."""

    repo: str
    ref: str | None = None
    path: str | None = None

    def __str__(self) -> str:
        return self.repo + (f"@{self.ref}" if self.ref else "") + (f":{self.path}" if self.path else "")


def parse_ref(text: str, *, allow_path: bool = True, what: str = "repo@ref:/path") -> FileRef:
    """Parse pachctl's ``repo[@ref][:/path]``.

    Raises:
        UsageError: bad repo name, bad ref, a path where none is allowed, or an unsafe path.
    """
    if "\x00" in text:
        raise UsageError(f"{text!r}: NUL bytes are not allowed; expected {what}")
    head, colon, path = text.partition(":")
    repo, at, ref = head.partition("@")
    m = QUALIFIED.match(repo)
    if not m:
        raise UsageError(f"{text!r}: repo name {repo!r} must be 1-63 letters, digits, '_' or '-' "
                         f"(optionally project/repo); expected {what}")
    repo = qualify(m.group("project"), m.group("name"))
    if at and not REF.match(ref):
        raise UsageError(f"{text!r}: {ref!r} is neither a branch nor a commit ID "
                         f"(optionally with ^N or ~N); expected {what}")
    if colon and not allow_path:
        raise UsageError(f"{text!r}: no :/path allowed here; expected {what}")
    return FileRef(repo=repo, ref=ref if at else None, path=clean_path(path) if colon else None)


def split_ancestry(ref: str) -> tuple[str, int]:
    """``master^`` -> ("master", 1); ``master^2`` / ``master~2`` / ``master^^`` -> ("master", 2)."""
    m = REF.match(ref)
    if not m:
        raise UsageError(f"{ref!r} is neither a branch nor a commit ID")
    n = 0
    for op, digits in re.findall(r"([~^])([0-9]*)", m.group("anc")):
        n += int(digits) if digits else 1
    return m.group("base"), n


def clean_path(path: str, *, what: str = "repo path") -> str:
    """Normalise a repo path to ``/a/b`` form (``/`` for the root), refusing what could escape
    the repo or mean different things on different systems.

    Raises:
        UsageError: ``..`` components, NUL bytes or backslashes.
    """
    if "\x00" in path:
        raise UsageError(f"{what} {path!r}: NUL bytes are not allowed")
    if "\\" in path:
        raise UsageError(f"{what} {path!r}: backslashes are not allowed; use '/'")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UsageError(f"{what} {path!r}: '..' is not allowed in a repo path")
    return "/" + "/".join(parts)


def join(base: str, rel: str) -> str:
    """Join a repo folder and a relative path (both already clean or cleanable)."""
    return clean_path(base.rstrip("/") + "/" + rel)
