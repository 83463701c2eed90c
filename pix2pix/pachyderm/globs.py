"""Pachyderm's glob patterns (doublestar-style, as its ohmyglob library matches them).

    /          the whole repo as one datum
    /*         each top-level file or folder          (``*`` and ``?`` never cross ``/``)
    /*/*       each entry one level down
    /**        every file and folder at any depth     (``**`` crosses ``/``)
    /{a,b}*    alternatives;  [abc] [!abc] [a-z]  classes;  \\* escapes
    /*_(*).txt capture groups, used by join (joinOn "$1") and group (groupBy "$1")

Patterns are matched against repo paths (``/a/b.png``) of files *and* of the folders they imply.
"""
from __future__ import annotations

import functools
import re

from pix2pix.errors import SpecError


class GlobError(ValueError):
    """A pattern that is not a valid glob; the message says where and why."""


def normalize(pattern: str) -> str:
    """Leading ``/`` added, trailing ``/`` dropped (``""`` and ``/`` both mean the root)."""
    p = pattern
    if not p.startswith("/"):
        p = "/" + p
    while len(p) > 1 and p.endswith("/") and not p.endswith("\\/"):
        p = p[:-1]
    return p


@functools.lru_cache(maxsize=512)
def compile_glob(pattern: str) -> re.Pattern:
    """A compiled regex that ``fullmatch``es the paths the glob selects.

    Raises:
        SpecError: the pattern is not a valid glob.
    """
    try:
        return re.compile(_translate(normalize(pattern)))
    except (GlobError, re.error) as e:  # re.error: e.g. a reversed range "[z-a]"
        raise SpecError(f"{pattern!r} is not a valid glob ({e})") from None


def check_glob(pattern: str) -> str | None:
    """None when valid, else the reason."""
    try:
        re.compile(_translate(normalize(pattern)))
        return None
    except GlobError as e:
        return str(e)
    except re.error as e:
        return str(e)


def _translate(p: str) -> str:
    if p == "/":
        return "/"
    out: list[str] = []
    i, n = 0, len(p)
    braces = 0
    parens = 0
    while i < n:
        ch = p[i]
        if ch == "\\":
            if i + 1 >= n:
                raise GlobError("a trailing '\\' escapes nothing")
            out.append(re.escape(p[i + 1]))
            i += 2
            continue
        if ch == "*":
            if i + 1 < n and p[i + 1] == "*":
                # "/**/" also matches "/" (zero folders), as doublestar does.
                if out and out[-1] == "/" and i + 2 < n and p[i + 2] == "/":
                    out[-1] = "(?:/.*)?/"
                    i += 3
                    continue
                out.append(".*")
                i += 2
            else:
                out.append("[^/]*")
                i += 1
            continue
        if ch == "?":
            out.append("[^/]")
        elif ch == "[":
            j = i + 1
            if j < n and p[j] in "!^":
                j += 1
            if j < n and p[j] == "]":
                j += 1
            while j < n and p[j] != "]":
                j += 1
            if j >= n:
                raise GlobError(f"'[' at position {i} is never closed")
            body = p[i + 1:j]
            neg = body[:1] in ("!", "^")
            if neg:
                body = body[1:]
            if not body:
                raise GlobError(f"empty character class at position {i}")
            body = body.replace("\\", "\\\\")
            out.append(("[^/" if neg else "[") + body.replace("[", "\\[") + "]")
            i = j + 1
            continue
        elif ch == "]":
            raise GlobError(f"']' at position {i} has no '['")
        elif ch == "{":
            braces += 1
            out.append("(?:")
        elif ch == "}":
            if not braces:
                raise GlobError(f"'}}' at position {i} has no '{{'")
            braces -= 1
            out.append(")")
        elif ch == "," and braces:
            out.append("|")
        elif ch == "(":
            parens += 1
            out.append("(")
        elif ch == ")":
            if not parens:
                raise GlobError(f"')' at position {i} has no '('")
            parens -= 1
            out.append(")")
        else:
            out.append(re.escape(ch))
        i += 1
    if braces:
        raise GlobError("'{' is never closed")
    if parens:
        raise GlobError("'(' is never closed")
    return "".join(out)


def expand_paths(files) -> list[str]:
    """Every file path plus every folder they imply (without ``/``), sorted."""
    out = set()
    for f in files:
        out.add(f)
        parent = f.rsplit("/", 1)[0]
        while parent and parent not in out:
            out.add(parent)
            parent = parent.rsplit("/", 1)[0]
    return sorted(out)


def match(pattern: str, paths) -> list[str]:
    """The paths (files and implied folders of ``paths``) the glob selects, sorted;
    ``/`` selects ``["/"]`` when there is at least one file."""
    paths = list(paths)
    if normalize(pattern) == "/":
        return ["/"] if paths else []
    rx = compile_glob(pattern)
    return [p for p in expand_paths(paths) if rx.fullmatch(p)]
