"""Pachyderm's pfs input globs, matched the way pachd matches them.

pachd compiles a glob with its own fork of gobwas/glob (github.com/pachyderm/ohmyglob), ``/`` as
the only separator; ohmyglob turns the glob into a backtracking regex. This module does the same
translation into Python's ``re`` (same lexer rules, same regex shape), so a pattern selects here
exactly what it selects on pachd, or is refused with a SpecError that names it and says why.

Syntax (``*`` ``?`` and ``!(..)`` never cross ``/``; everything else may)::

    /*            each top-level file or folder          /*/*   each entry one level down
    /**           every file and folder, at any depth    /**/x  needs at least one folder: not /x
    ?             one character
    [abc] [a-z]   one of;   [!abc] [^a-z]   none of (may match ``/``: write [!/] to exclude it)
    [[:alpha:]]   POSIX names alnum alpha ascii blank cntrl digit graph lower print punct
                  space upper word xdigit, as ohmyglob expands them (it keeps the outer ``[`` ``]``
                  in the set, so [[:digit:]] also matches ``[`` and ``]``)
    {a,b}         alternatives (not captured)
    (a|b) @(a|b)  exactly one of, captured                 ?(a|b)  zero or one, captured
    *(a|b)        zero or more, captured                   +(a|b)  one or more, captured
    !(a|b)        anything but a or b, captured
    \\x           the character x, literally

Every ``(..)`` group, plain or extglob, is a capture, numbered by its ``(`` from the left
(``{..}`` is not); joinOn/groupBy name them ``$1`` or ``${1}``, ``$0`` is the whole path and ``$$``
a dollar, as :func:`expand` substitutes them.

What pachd does to the pattern and the paths, reproduced here:

- The pattern is cleaned as a path (``pfsfile.CleanPath``: leading ``/`` added, ``//`` ``.`` ``..``
  and trailing ``/`` removed), so ``*.png`` means ``/*.png`` and ``/a/`` means ``/a``.
- Folders are matched without their trailing ``/``. ``/`` (the root) is matched only by the glob
  ``/`` (the whole commit as one datum).
- Only paths that start with the pattern's literal prefix (the text before its first
  ``* ? [ ] { } ! ( ) @ + ^``) are looked at, so a backslash in that prefix (``/a\\b*``) all but
  always leaves nothing to match.
- ohmyglob's lexer quirks are kept: an unclosed ``{`` or ``(`` is closed at the end; ``,`` ``|``
  ``)`` ``}`` ``]`` are plain characters where nothing is open; an ``@ ! ^ +`` not followed by
  ``(`` starts plain text that runs to the next ``* ? [ { (`` (so in ``(a+b|c)`` the ``+b|c)`` is
  literal); inside ``{..}`` the text of a ``(..)`` runs on past ``|`` and ``)``; the first ``!``
  or ``^`` anywhere inside ``[..]`` negates it.

Refused (SpecError): an unclosed ``[``, a reversed range ``[z-a]`` and ``^(..)`` (pachd cannot
compile them); an empty set ``[]`` / ``[!]`` and overlapping POSIX names (what pachd does there is
an accident of its regex parser or of Go's map order); the characters U+FFFE/U+FFFF (ohmyglob's
internal markers) and lone surrogates.
"""
from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass, field

from pix2pix.errors import SpecError


class GlobError(ValueError):
    """A pattern that is not a valid glob; the message says where and why."""


# -- pachd's view of the pattern -------------------------------------------------------------------
def normalize(pattern: str) -> str:
    """The pattern as pachd stores and applies it: Go's ``path.Clean``, then ``/`` + the result
    without surrounding slashes (``""``, ``/`` and ``.`` all mean the root)."""
    c = _go_path_clean(pattern)
    return "/" if c == "." else "/" + c.strip("/")


def _go_path_clean(p: str) -> str:
    """Go's ``path.Clean``: unlike ``posixpath.normpath`` it also folds a leading ``//``."""
    if not p:
        return "."
    rooted = p.startswith("/")
    parts: list[str] = []
    for el in p.split("/"):
        if el in ("", "."):
            continue
        if el == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(el)
    out = ("/" if rooted else "") + "/".join(parts)
    return out or "."


_GLOB_CHARS = re.compile(r"[*?\[\]{}!()@+^]")  # pachd's storage.globRegex


def literal_prefix(pattern: str) -> str:
    """The text before the first glob character: pachd reads only paths that start with it."""
    m = _GLOB_CHARS.search(pattern)
    return pattern if m is None else pattern[:m.start()]


# -- ohmyglob: lexer -------------------------------------------------------------------------------
_BASIC_BREAKERS = frozenset("?*[{(")
_TEXT_BREAKERS = _BASIC_BREAKERS | frozenset("@!^+")
_CAPTURE_BREAKERS = _TEXT_BREAKERS | frozenset(")|")
_TERMS_BREAKERS = _TEXT_BREAKERS | frozenset("},")


def _lex(p: str) -> list[tuple]:
    """ohmyglob's tokens: ("text", s) ("any",) ("super",) ("single",) ("set", negated, chars)
    ("terms",) ("capture", quantifier) ("sep",) ("close",). Its brace and parenthesis levels are
    the lexer's own counters, kept apart from the parser's tree, as in ohmyglob (that is where
    its quirks come from)."""
    toks: list[tuple] = []
    terms = capture = 0
    i, n = 0, len(p)

    def text(start: int, breakers: frozenset) -> int:
        data, j, escaped = [], start, False
        while j < n:
            c = p[j]
            if not escaped:
                if c == "\\":
                    escaped, j = True, j + 1
                    continue
                if c in breakers:
                    break
            escaped = False
            data.append(c)
            j += 1
        if data:  # a lone trailing "\" escapes nothing and is dropped
            toks.append(("text", "".join(data)))
        return j

    while i < n:
        c, nxt = p[i], p[i + 1] if i + 1 < n else ""
        i += 1
        if c == "{":
            terms += 1
            toks.append(("terms",))
        elif c == "," and terms:
            toks.append(("sep",))
        elif c == "}" and terms:
            terms -= 1
            toks.append(("close",))
        elif c == "|" and capture:
            toks.append(("sep",))
        elif c == "[":
            i = _lex_set(p, i, toks)
        elif c == "(":
            capture += 1
            toks.append(("capture", "@"))
        elif c in "@!^+":
            if nxt == "(":
                capture, i = capture + 1, i + 1
                toks.append(("capture", c))
            else:
                i = text(i - 1, _BASIC_BREAKERS)
        elif c == ")" and capture:
            capture -= 1
            toks.append(("close",))
        elif c == "?":
            if nxt == "(":
                capture, i = capture + 1, i + 1
                toks.append(("capture", "?"))
            else:
                toks.append(("single",))
        elif c == "*":
            if nxt == "*" and p[i + 1:i + 2] != "(":
                i += 1
                toks.append(("super",))
            elif nxt == "(":
                capture, i = capture + 1, i + 1
                toks.append(("capture", "*"))
            else:  # includes "**(": a "*" then the capture "*(..)"
                toks.append(("any",))
        else:
            i = text(i - 1, _TERMS_BREAKERS if terms else _CAPTURE_BREAKERS if capture
                     else _TEXT_BREAKERS)
    return toks


def _lex_set(p: str, i: int, toks: list[tuple]) -> int:
    """``[..]`` from just after the ``[``: ``\\`` escapes, the first ``!``/``^`` anywhere negates,
    an inner ``[`` lets the next ``]`` through (for ``[[:alpha:]]``)."""
    start, neg, posix, escaped, data = i - 1, False, False, False, []
    while True:
        if i >= len(p):
            raise GlobError(f"'[' at position {start} is never closed")
        c = p[i]
        i += 1
        if not escaped:
            if c == "\\":
                escaped = True
                continue
            if c == "[":
                posix = True
            if c == "]":
                if not posix:
                    break
                posix = False
            if not neg and c in "!^":
                neg = True
                continue
        escaped = False
        data.append(c)
    toks.append(("set", neg, _posix_names("".join(data), p[start:i])))
    return i


_POSIX = {
    ":alnum:": "0-9A-Za-z", ":alpha:": "A-Za-z", ":ascii:": "\x00-\x7f", ":blank:": "\t ",
    ":cntrl:": "\x00-\x1f\x7f", ":digit:": "0-9", ":graph:": "!-~]", ":lower:": "a-z",
    ":print:": " -~", ":punct:": "!-/:-@[-`{-~", ":space:": "\t\n\v\f\r ", ":upper:": "A-Z",
    ":word:": "0-9A-Za-z_", ":xdigit:": "0-9A-Fa-f",
}  # ohmyglob's table, ":graph:"'s stray "]" included
_POSIX_NAME = re.compile("(?=(" + "|".join(map(re.escape, _POSIX)) + "))")


def _posix_names(chars: str, where: str) -> str:
    """ohmyglob replaces every POSIX name in a set's text, in Go's (random) map order; that order
    only matters when two names share a colon, which is refused."""
    spans = [(m.start(), m.start() + len(m.group(1))) for m in _POSIX_NAME.finditer(chars)]
    if any(b[0] < a[1] for a, b in itertools.pairwise(spans)):
        raise GlobError(f"the POSIX class names in {where} overlap; pachd's result depends on "
                        "Go's map order")
    for start, end in reversed(spans):
        chars = chars[:start] + _POSIX[chars[start:end]] + chars[end:]
    return chars


# -- ohmyglob: parser ------------------------------------------------------------------------------
@dataclass(eq=False)
class _Node:
    kind: str  # pattern anyof capture text any super single set
    value: object = None
    parent: _Node | None = None
    children: list[_Node] = field(default_factory=list)

    def add(self, child: _Node) -> _Node:
        child.parent = self
        self.children.append(child)
        return child


def _parse(toks: list[tuple]) -> _Node:
    """ohmyglob's tree. A close pops two levels from wherever the parser is (it does not check
    what it closes), and a separator opens a sibling alternative. Both only come while the lexer
    has something open, so the parser is never at the root then. What is still open at the end
    is closed silently."""
    root = tree = _Node("pattern")
    for tok in toks:
        kind = tok[0]
        if kind in ("terms", "capture"):
            group = tree.add(_Node("anyof" if kind == "terms" else "capture", tok[1:]))
            tree = group.add(_Node("pattern"))
        elif kind == "sep":
            tree = tree.parent.add(_Node("pattern"))
        elif kind == "close":
            tree = tree.parent.parent
        else:
            tree.add(_Node(kind, tok[1:]))
    return root


# -- ohmyglob: regex -------------------------------------------------------------------------------
# ohmyglob marks, in the regex text, where a negation's scope may end (_NEG) and the elements
# that bound it (_BOUND), then decides once for the whole regex whether negations run to the
# end of the path ("$"). These are the characters it uses; patterns containing them are refused.
_NEG, _BOUND = "\uffff", "\ufffe"
_NOT_SEP = "[^/]"


def _regex(node: _Node) -> str:
    kind, v = node.kind, node.value
    if kind == "pattern":
        return "".join(_regex(c) for c in node.children)
    if kind == "anyof":
        return "(?:" + "|".join(_regex(c) for c in node.children) + ")"
    if kind == "capture":
        q = v[0]
        if q == "^":
            raise GlobError("'^(' is not an extglob (pachd cannot compile it)")
        if q == "!":
            alts = (_NEG + "|").join(_regex(c) for c in node.children)
            return f"((?:(?!(?:{alts}{_NEG})){_NOT_SEP}*))"
        alts = "|".join(_regex(c) for c in node.children)
        return "(" + alts + ")" if q == "@" else f"((?:{alts}){q})"
    if kind == "text":
        return re.escape(v[0]) + _BOUND
    if kind == "any":
        return _NOT_SEP + "*" + _BOUND
    if kind == "super":
        return ".*" + _BOUND
    if kind == "single":
        return _NOT_SEP
    return _char_set(*v)


def _char_set(neg: bool, chars: str) -> str:
    """A ``[..]`` as ohmyglob's regex engine reads it: its characters are literal, and ``x-y``
    (a ``-`` with a character on each side) is a range."""
    if not chars:
        raise GlobError("an empty set [] or [!]: pachd's regex parser reads the rest of the "
                        "pattern as part of it")
    items, i = [], 0
    while i < len(chars):
        lo = chars[i]
        if i + 2 < len(chars) and chars[i + 1] == "-":
            hi = chars[i + 2]
            if hi < lo:
                raise GlobError(f"the range {lo}-{hi} is reversed")
            items.append(_lit(lo) + "-" + _lit(hi))
            i += 3
        else:
            items.append(_lit(lo))
            i += 1
    return ("[^" if neg else "[") + "".join(items) + "]"


def _lit(c: str) -> str:
    return f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}"


def translate(pattern: str) -> str:
    """The Python regex ohmyglob builds for ``pattern`` with ``/`` as separator (no cleaning):
    it fullmatches what ohmyglob's ``Match`` accepts.

    Raises:
        GlobError: the pattern cannot be matched as pachd matches it.
    """
    bad = [c for c in pattern if c in (_NEG, _BOUND) or "\ud800" <= c <= "\udfff"]
    if bad:
        raise GlobError(f"it contains {bad[0]!a}, which ohmyglob cannot match")
    rx = _regex(_parse(_lex(pattern)))
    end = rx.find(_NEG + ")")
    if end > 0:
        rx = rx.replace(_NEG, "" if _BOUND in rx[end:] else "$")
    return r"\A" + rx.replace(_BOUND, "") + r"\Z"


# -- the engine's API ------------------------------------------------------------------------------
def _build(pattern: str, *, raw: bool) -> re.Pattern:
    """Raises GlobError."""
    if raw:
        text = translate(pattern)
    else:
        clean = normalize(pattern)
        text = translate(clean)
        if clean != "/":  # the glob "/" matches the root itself, and only it
            # pachd trims folders' "/" before matching, so the root ("" then) matches no other
            # glob; and it reads only the paths that start with the literal prefix.
            text = r"\A(?!/\Z)(?=" + re.escape(literal_prefix(clean)) + ")" + text[2:]
    try:
        return re.compile(text)
    except re.error as e:  # unforeseen: refused rather than guessed
        raise GlobError(f"Python's re cannot compile its translation: {e}") from None


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str, raw: bool) -> re.Pattern:
    try:
        return _build(pattern, raw=raw)
    except GlobError as e:
        raise SpecError(f"{pattern!r} is not a valid glob ({e})") from None


def compile_raw(pattern: str) -> re.Pattern:
    """ohmyglob's ``Compile(pattern, '/')``: no cleaning, no prefix, the root not special.

    Raises:
        SpecError: the pattern is not a valid glob.
    """
    return _compiled(pattern, True)


def compile_glob(pattern: str) -> re.Pattern:
    """A regex that ``fullmatch``es the repo paths (files, and folders without their trailing
    ``/``) that pachd's GlobFile returns for ``pattern``; its groups are the glob's captures
    (None where ohmyglob has ``""``; :func:`expand` reads them as ohmyglob does).

    Raises:
        SpecError: the pattern is not a valid glob.
    """
    return _compiled(pattern, False)


def check_glob(pattern: str) -> str | None:
    """None when valid, else the reason."""
    try:
        _build(pattern, raw=False)
    except GlobError as e:
        return str(e)
    return None


def expand(m: re.Match | None, template: str) -> str:
    """ohmyglob's ``Replace``: ``$n`` / ``${n}`` become capture n (``""`` when there is no such
    group or no match), ``$$`` a ``$``; any other ``$`` stays.

    Raises:
        SpecError: ``$0n`` (a leading zero), on which pachd's worker crashes.
    """
    groups = [] if m is None else [m.group(0), *(g or "" for g in m.groups())]
    out, i = [], 0
    while i < len(template):
        j = template.find("$", i)
        if j < 0:
            break
        out.append(template[i:j])
        if template.startswith("$$", j):
            out.append("$")
            i = j + 2
            continue
        ref = _digits_ref(template, j)
        if ref is None:
            out.append("$")
            i = j + 1
            continue
        digits, i = ref
        if digits.isascii() and (digits == "0" or not digits.startswith("0")) and len(digits) <= 9:
            n = int(digits)
            if n < len(groups):
                out.append(groups[n])
        elif groups:
            raise SpecError(f"{template!r}: ${digits} is not a capture group number "
                            "(pachd's worker crashes on it)")
    out.append(template[i:])
    return "".join(out)


def _digits_ref(t: str, j: int) -> tuple[str, int] | None:
    """(the digits, the index after the reference) for ``$n`` / ``${n}`` at ``t[j]``, else None.
    Digits are Unicode decimal digits, as Go's ``unicode.IsDigit`` reads them."""
    k = j + 2 if t.startswith("${", j) else j + 1
    e = k
    while e < len(t) and t[e].isdecimal():
        e += 1
    if e == k:
        return None
    if k == j + 2:
        if not t.startswith("}", e):
            return None
        return t[k:e], e + 1
    return t[k:e], e


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
    rx = compile_glob(pattern)
    if normalize(pattern) == "/":
        return ["/"] if paths else []
    return [p for p in expand_paths(paths) if rx.fullmatch(p)]
