"""Property tests: the ``repo@branch:/path`` parser and the glob matcher."""
from __future__ import annotations

import fnmatch

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from pix2pix.errors import SpecError, UsageError
from pix2pix.pachyderm.globs import check_glob, compile_glob, match
from pix2pix.pachyderm.refs import FileRef, clean_path, parse_ref, split_ancestry

NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
names = st.text(NAME_CHARS, min_size=1, max_size=20)
segments = st.text(st.characters(blacklist_characters="/\\\x00", blacklist_categories=("Cs",)),
                   min_size=1, max_size=8).filter(lambda s: s not in (".", ".."))
paths = st.lists(segments, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))
refs = st.one_of(names, st.text("0123456789abcdef", min_size=32, max_size=32),
                 st.tuples(names, st.sampled_from(["^", "^2", "~3", "^^"])).map("".join))


@given(repo=names, ref=refs, path=paths)
def test_parse_ref_round_trips(repo: str, ref: str, path: str):
    text = f"{repo}@{ref}:{path}"
    assert parse_ref(text) == FileRef(repo=repo, ref=ref, path=path)
    assert str(parse_ref(text)) == text


@given(repo=names, ref=st.one_of(st.none(), names))
def test_parse_ref_without_path(repo: str, ref):
    text = repo if ref is None else f"{repo}@{ref}"
    assert parse_ref(text, allow_path=False) == FileRef(repo=repo, ref=ref)


@given(repo=names, before=st.lists(segments, max_size=2), after=st.lists(segments, max_size=2))
def test_dotdot_anywhere_is_refused(repo: str, before, after):
    path = "/" + "/".join([*before, "..", *after])
    with pytest.raises(UsageError, match=r"'\.\.'"):
        parse_ref(f"{repo}@master:{path}")


@given(path=paths, bad=st.sampled_from(["\\", "\x00"]))
def test_backslash_and_nul_are_refused(path: str, bad: str):
    with pytest.raises(UsageError):
        clean_path(path + bad + "x")


@given(text=st.text(max_size=30))
def test_parser_never_crashes(text: str):
    try:
        parse_ref(text)
    except UsageError:
        pass


@given(parts=st.lists(segments, min_size=1, max_size=4))
def test_clean_path_is_idempotent_and_rooted(parts):
    p = clean_path("//".join(parts) + "/")
    assert p.startswith("/") and clean_path(p) == p and "//" not in p


@pytest.mark.parametrize("ref,expected", [("master", ("master", 0)), ("master^", ("master", 1)),
                                          ("master^3", ("master", 3)), ("dev~2^", ("dev", 3))])
def test_split_ancestry(ref, expected):
    assert split_ancestry(ref) == expected


# -- globs -----------------------------------------------------------------------------------------
glob_segments = st.text("ab*?", min_size=1, max_size=4).filter(lambda s: "**" not in s)
path_segments = st.text("abc", min_size=1, max_size=4)


@given(pat=st.lists(glob_segments, min_size=1, max_size=3),
       path=st.lists(path_segments, min_size=1, max_size=3))
def test_single_star_glob_agrees_with_per_segment_fnmatch(pat, path):
    """``*`` and ``?`` never cross ``/``: a glob matches a path iff it has the same number of
    segments and each segment matches (fnmatch is the oracle per segment)."""
    expected = len(pat) == len(path) and all(fnmatch.fnmatchcase(s, p) for s, p in zip(path, pat))
    assert bool(compile_glob("/" + "/".join(pat)).fullmatch("/" + "/".join(path))) == expected


@given(path=st.lists(path_segments, min_size=1, max_size=4))
def test_double_star_matches_any_depth(path):
    p = "/" + "/".join(path)
    assert compile_glob("/**").fullmatch(p)
    # pachd's "**" is any text, "/" included: "/**/x" needs one folder at least (no doublestar
    # "zero folders" rule)
    assert bool(compile_glob("/**/" + path[-1]).fullmatch(p)) == (len(path) >= 2)


@given(files=st.sets(st.lists(path_segments, min_size=1, max_size=3).map(lambda s: "/" + "/".join(s)),
                     min_size=1, max_size=8))
def test_root_glob_is_one_datum_and_star_is_top_level(files):
    # a file cannot also be a folder: drop paths that are prefixes of others
    files = {f for f in files if not any(g.startswith(f + "/") for g in files)}
    assume(files)
    assert match("/", files) == ["/"]
    assert match("/*", files) == sorted({"/" + f.split("/")[1] for f in files})


@given(lit=st.text("abc.-_ ", min_size=1, max_size=6).filter(lambda s: s not in (".", "..")))
def test_literal_globs_match_only_themselves(lit: str):  # "/." and "/.." are cleaned to "/"
    rx = compile_glob("/" + lit)
    assert rx.fullmatch("/" + lit)
    assert not rx.fullmatch("/" + lit + "x")


# pachd compiles "/{a,b" "/(x" (closed at the end), "/a}" "/x)" "/a]" (literal) and "/a\\"
# (selects nothing): tests/engine/test_engine_globs.py says what each selects
@pytest.mark.parametrize("bad", ["[", "/a[", "/[z-a]", "/^(x)", "/[]", "/[!]"])
def test_invalid_globs_are_refused(bad: str):
    assert check_glob(bad)
    with pytest.raises(SpecError, match="not a valid glob"):
        compile_glob(bad)


@pytest.mark.parametrize("glob,path,ok", [
    ("/*.png", "/a.png", True), ("/*.png", "/d/a.png", False), ("/**/*.png", "/d/e/a.png", True),
    ("/**/*.png", "/a.png", False), ("/[ab]*", "/b1", True), ("/[!ab]*", "/b1", False),
    ("/{x,y}/*", "/y/1", True), ("/STOREID(*).txt", "/STOREID12.txt", True), ("*", "/a", True),
])
def test_glob_examples(glob: str, path: str, ok: bool):
    assert bool(compile_glob(glob).fullmatch(path)) == ok


# -- datums ----------------------------------------------------------------------------------------
from pix2pix.pachyderm import datums as dm
from pix2pix.pachyderm.spec import build_input  # noqa: E402

file_sets = st.sets(st.lists(path_segments, min_size=1, max_size=3).map(lambda s: "/" + "/".join(s)),
                    min_size=0, max_size=10).map(
    lambda fs: {f for f in fs if not any(g.startswith(f + "/") for g in fs)})


def _ic(repo: str, files) -> dm.InputCommit:
    return dm.InputCommit(repo=repo, branch="master", commit="c" * 32 if files else None,
                          tree={f: (f"h{f}", 1) for f in files})


@given(files=file_sets)
def test_star_glob_puts_every_file_in_exactly_one_datum(files):
    ds = dm.compute(build_input({"pfs": {"repo": "r", "glob": "/*"}}), {("r", "master"): _ic("r", files)}, salt="s")
    got = [f for d in ds for f in d.matches[0].files]
    assert sorted(p for p, _, _ in got) == sorted(files)
    assert len({d.id for d in ds}) == len(ds)


@given(a=file_sets, b=file_sets)
def test_cross_is_the_product_and_union_the_sum(a, b):
    commits = {("a", "master"): _ic("a", a), ("b", "master"): _ic("b", b)}
    pa, pb = {"pfs": {"repo": "a", "glob": "/*"}}, {"pfs": {"repo": "b", "glob": "/*"}}
    na = len(dm.compute(build_input(pa), commits, salt="s"))
    nb = len(dm.compute(build_input(pb), commits, salt="s"))
    assert len(dm.compute(build_input({"cross": [pa, pb]}), commits, salt="s")) == na * nb
    assert len(dm.compute(build_input({"union": [pa, pb]}), commits, salt="s")) == na + nb


@given(files=file_sets.filter(bool))
def test_datum_hash_tracks_content_and_salt_but_id_only_paths(files):
    pfs_ = {"pfs": {"repo": "r", "glob": "/"}}
    base = dm.compute(build_input(pfs_), {("r", "master"): _ic("r", files)}, salt="s")[0]
    changed_tree = _ic("r", files)
    first = sorted(files)[0]
    changed_tree.tree[first] = ("other", 1)
    changed = dm.compute(build_input(pfs_), {("r", "master"): changed_tree}, salt="s")[0]
    resalted = dm.compute(build_input(pfs_), {("r", "master"): _ic("r", files)}, salt="t")[0]
    assert changed.id == base.id == resalted.id
    assert len({base.hash, changed.hash, resalted.hash}) == 3


# -- the store against a dict model ----------------------------------------------------------------
import shutil  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from hypothesis import settings  # noqa: E402
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule  # noqa: E402

from pix2pix.pachyderm.engine import Engine  # noqa: E402

model_paths = st.sampled_from(["/a", "/b", "/d/x", "/d/y", "/e/f/g"])


class StoreModel(RuleBasedStateMachine):
    """Random puts, appends, deletes and commits: the branch head (the open commit) reads as
    what was staged (read your writes), the last finished commit as a dict model, and every
    earlier commit still reads as it was."""

    def __init__(self):
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="pix2pix-model-"))
        self.eng = Engine(self.dir / "state")
        self.eng.create_repo("r")
        self.committed: dict[str, bytes] = {}
        self.staged: dict[str, bytes] = {}
        self.history: list[tuple[str, dict[str, bytes]]] = []
        self.open = self.eng.start_commit("r")

    def teardown(self):
        self.eng.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(path=model_paths, data=st.binary(max_size=20))
    def put(self, path, data):
        self.eng.put_file("r", self.open, path, data)
        self.staged[path] = data

    @rule(path=model_paths, data=st.binary(max_size=20))
    def append(self, path, data):
        self.eng.put_file("r", self.open, path, data, append=True)
        self.staged[path] = self.staged.get(path, b"") + data

    @rule(path=st.sampled_from(["/a", "/d", "/e", "/zz"]))
    def delete(self, path):
        self.eng.delete_file("r", self.open, path)
        for p in [p for p in self.staged if p == path or p.startswith(path + "/")]:
            del self.staged[p]

    @rule()
    def commit(self):
        info = self.eng.finish_commit("r", self.open)
        self.committed = dict(self.staged)
        self.history.append((info.id, dict(self.committed)))
        self.open = self.eng.start_commit("r")

    @invariant()
    def head_matches_model(self):
        got = {f.path: self.eng.get_file("r", f.commit, f.path)
               for f in self.eng.walk_files("r", "master")}
        assert got == self.staged
        if self.history:
            cid, files = self.history[-1]
            assert {f.path: self.eng.get_file("r", cid, f.path)
                    for f in self.eng.walk_files("r", cid)} == self.committed

    @precondition(lambda self: len(self.history) > 1)
    @rule()
    def old_commits_are_immutable(self):
        cid, files = self.history[0]
        got = {f.path: self.eng.get_file("r", cid, f.path) for f in self.eng.walk_files("r", cid)} \
            if files else {}
        assert got == files


TestStoreModel = StoreModel.TestCase
TestStoreModel.settings = settings(max_examples=25, stateful_step_count=15, deadline=None)
