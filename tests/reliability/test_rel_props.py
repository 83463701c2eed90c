"""Properties of the ``repo@branch:/path`` parser, repo paths and the glob matcher that
tests/engine/test_engine_props.py does not state yet: parse(format(ref)) for every shape of
ref, no parsed path can name a place outside its repo, ``/*/*`` datums partition the files one
level down, braces are a union, and any text is either a valid glob or a SpecError."""
from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pix2pix.errors import SpecError, UsageError
from pix2pix.pachyderm import datums as dm
from pix2pix.pachyderm.spec import build_input
from pix2pix.pachyderm.globs import check_glob, compile_glob, expand_paths, match
from pix2pix.pachyderm.refs import FileRef, clean_path, join, parse_ref

NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
names = st.text(NAME_CHARS, min_size=1, max_size=12)
segments = st.text(st.characters(blacklist_characters="/\\\x00:", blacklist_categories=("Cs",)),
                   min_size=1, max_size=6).filter(lambda s: s not in (".", ".."))
paths = st.lists(segments, min_size=0, max_size=4).map(lambda parts: "/" + "/".join(parts))
refs = st.one_of(st.none(), names, st.text("0123456789abcdef", min_size=32, max_size=32),
                 st.tuples(names, st.sampled_from(["^", "^3", "~2", "^^", "~1^2"])).map("".join))

@pytest.mark.rel("hostile")  # generated text: 100 examples a run
@given(repo=names, ref=refs, path=st.one_of(st.none(), paths))
def test_parse_of_format_is_identity_for_every_shape(repo, ref, path):
    ref_ = FileRef(repo=repo, ref=ref, path=path if path != "/" else None)
    assert parse_ref(str(ref_)) == ref_


@pytest.mark.rel("hostile")  # generated text: 100 examples a run
@given(text=st.text(max_size=40))
def test_any_parsed_path_stays_inside_the_repo(text):
    """Whatever the text, a path that parses is rooted, normalised and has no way out."""
    try:
        ref = parse_ref(text)
    except UsageError as e:
        assert "\n" not in str(e)  # one line, as the CLI prints it
        return
    if ref.path is not None:
        parts = ref.path.split("/")
        assert ref.path.startswith("/") and "\\" not in ref.path and "\x00" not in ref.path
        assert ".." not in parts and "." not in parts and "" not in parts[1:] or ref.path == "/"


@pytest.mark.rel("hostile")  # generated text: 100 examples a run
@given(base=paths, rel=st.lists(st.one_of(segments, st.sampled_from(["..", ".", ""])),
                                max_size=5).map("/".join))
def test_join_never_climbs_above_its_base(base, rel):
    try:
        joined = join(base, rel)
    except UsageError:
        assert ".." in rel.split("/")
        return
    assert joined == base or joined.startswith(base.rstrip("/") + "/")


@pytest.mark.rel("hostile")  # generated text: 100 examples a run
@example(text="/[z-a]")  # a reversed range: pachd's regex engine refuses it too
@given(text=st.text(max_size=20))
def test_any_text_is_a_valid_glob_or_a_spec_error(text):
    reason = check_glob(text)
    try:
        rx = compile_glob(text)
    except SpecError as e:
        assert reason is not None and repr(text) in str(e)  # names the pattern
        return
    assert reason is None and isinstance(rx, re.Pattern)


path_segments = st.text("abc", min_size=1, max_size=3)
file_sets = st.sets(st.lists(path_segments, min_size=1, max_size=3).map(lambda s: "/" + "/".join(s)),
                    min_size=1, max_size=12).map(
    lambda fs: {f for f in fs if not any(g.startswith(f + "/") for g in fs)})


def _ic(files) -> dm.InputCommit:
    return dm.InputCommit(repo="r", branch="master", commit="c" * 32,
                          tree={f: (f"h{f}", 1) for f in files})


@given(files=file_sets)
def test_star_star_glob_datums_partition_the_files_one_level_down(files):
    ds = dm.compute(build_input({"pfs": {"repo": "r", "glob": "/*/*"}}), {("r", "master"): _ic(files)},
                    salt="s")
    got = [p for d in ds for p, _, _ in d.matches[0].files]
    assert sorted(got) == sorted(f for f in files if f.count("/") >= 2)  # each once
    assert len({d.id for d in ds}) == len(ds)


@given(files=file_sets, a=st.text("abc*?", min_size=1, max_size=3),
       b=st.text("abc*?", min_size=1, max_size=3))
def test_braces_are_the_union_of_their_alternatives(files, a, b):
    both = set(match("/{" + a + "," + b + "}", files))
    assert both == set(match("/" + a, files)) | set(match("/" + b, files))


@given(files=file_sets)
def test_double_star_selects_every_file_and_folder(files):
    assert match("/**", files) == expand_paths(files)


@settings(max_examples=50)
@given(files=file_sets, glob=st.sampled_from(["/", "/*", "/*/*", "/**", "/a*", "/{a,b}/*"]))
def test_datums_only_ever_hold_files_of_the_input(files, glob):
    for d in dm.compute(build_input({"pfs": {"repo": "r", "glob": glob}}), {("r", "master"): _ic(files)},
                        salt="s"):
        for p, _, _ in d.matches[0].files:
            assert p in files and clean_path(p) == p
