"""The pipeline spec, typed: built once by :func:`parse_spec` (Pachyderm's JSON schema v2.11.6,
draft-04, shipped in ``schema/``, plus the checks pachd makes at create time) and shared by the
embedded engine, ``pix2pix local serve`` and the cluster client, so a spec is judged the same
way wherever it is going to run. Defaults live here and nowhere else::

    input.pfs.branch   "master"          input.pfs.name     the repo's name
    input.pfs.project  "default"         pipeline.project   "default"
    datumTries         3                 outputBranch       "master"
    parallelismSpec    1 worker          reprocessSpec      "until_success"

    spec = parse_spec(raw_dict, source="edges.json")   # SpecError naming source, pipeline, field
    spec.pfs_inputs        -> (PfsInput(name, repo, branch, glob, field="input.cross[0].pfs"), ...)
    spec.input_branches    -> (("images", "master"), ...)   each (repo, branch) once
    spec.raw               -> the camelCase dict, as stored and as sent to pachd

A stored spec is rebuilt with :meth:`PipelineSpec.from_raw` (no second schema check).
"""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

from pix2pix.errors import SpecError
from pix2pix.pachyderm.globs import check_glob
from pix2pix.pachyderm.refs import qualify
from pix2pix.pachyderm.schedules import check as check_schedule
from pix2pix.pachyderm.specfile import camelize

SCHEMA_DIR = Path(__file__).with_name("schema")
NAME = re.compile(r"^[a-zA-Z0-9_-]{1,63}$")
INPUT_KINDS = ("pfs", "cross", "union", "join", "group", "cron")
COMBINATIONS = ("cross", "union", "join", "group")
DEFAULT_BRANCH = "master"
DEFAULT_PROJECT = "default"
DEFAULT_DATUM_TRIES = 3  # Pachyderm's default
_DURATION = re.compile(r"^([0-9]+\.?[0-9]*|\.[0-9]+)s$")


# -- the typed spec --------------------------------------------------------------------------------
@dataclass(frozen=True)
class PfsInput:
    """One pfs input, defaults applied. ``field`` is where it sits in the spec, for messages."""

    name: str
    repo: str
    glob: str
    branch: str = DEFAULT_BRANCH
    project: str = DEFAULT_PROJECT
    commit: Optional[str] = None
    join_on: str = ""
    group_by: str = ""
    outer_join: bool = False
    field: str = "input.pfs"
    from_cron: bool = False  # the pfs side of a cron input (its tick repo, branch master, /*)

    @property
    def key(self) -> str:
        """``joinOn`` or ``groupBy``: what this input's datums are matched on."""
        return self.join_on or self.group_by

    @property
    def qrepo(self) -> str:
        """The repo's engine name: ``repo``, or ``project/repo`` outside the default project."""
        return qualify(self.project, self.repo)


@dataclass(frozen=True)
class CronInput:
    """A cron input: ticks on ``spec``'s schedule, each a commit to ``repo`` (its engine name;
    pachd's default ``<pipeline>_<name>``), read as a pfs input of that repo with glob ``/*``."""

    name: str
    spec: str
    repo: str = ""
    overwrite: bool = False
    start: str = ""  # RFC 3339; the first tick follows it (set when the pipeline is created)
    field: str = "input.cron"


@dataclass(frozen=True)
class Input:
    """A node of the input tree: a ``pfs`` or ``cron`` leaf, or a combination of children."""

    kind: str  # one of INPUT_KINDS, or "none" (a spout)
    pfs: Optional[PfsInput] = None
    cron: Optional[CronInput] = None
    children: tuple["Input", ...] = ()
    field: str = "input"

    def walk(self) -> Iterator["Input"]:
        """This node and every node under it, depth first."""
        yield self
        for c in self.children:
            yield from c.walk()

    @functools.cached_property
    def pfs_inputs(self) -> tuple[PfsInput, ...]:
        return tuple(n.pfs for n in self.walk() if n.pfs is not None)

    @functools.cached_property
    def names(self) -> tuple[str, ...]:
        """The /pfs folder names a datum of this input has (union: those of any branch)."""
        out: list[str] = []
        for n in self.walk():
            leaf = n.pfs or n.cron
            if leaf is not None and leaf.name not in out:
                out.append(leaf.name)
        return tuple(out)

    def has(self, kind: str) -> bool:
        return any(n.kind == kind for n in self.walk())


@dataclass(frozen=True)
class Transform:
    cmd: tuple[str, ...]
    stdin: Optional[tuple[str, ...]] = None
    err_cmd: tuple[str, ...] = ()
    err_stdin: Optional[tuple[str, ...]] = None
    image: Optional[str] = None
    env: dict[str, str] = field(default_factory=dict)
    working_dir: Optional[str] = None
    accept_return_code: frozenset[int] = frozenset()
    datum_batching: bool = False


@dataclass(frozen=True, eq=False)
class PipelineSpec:
    """A validated pipeline spec with Pachyderm's defaults applied."""

    name: str
    transform: Transform
    input: Input
    raw: dict[str, Any]
    project: str = DEFAULT_PROJECT
    description: str = ""
    output_branch: str = DEFAULT_BRANCH
    datum_tries: int = DEFAULT_DATUM_TRIES
    datum_timeout: Optional[float] = None  # seconds
    job_timeout: Optional[float] = None
    parallelism: int = 1  # parallelismSpec.constant
    every_job: bool = False  # reprocessSpec "every_job"
    service: Optional[dict[str, Any]] = None
    spout: Optional[dict[str, Any]] = None

    @property
    def pfs_inputs(self) -> tuple[PfsInput, ...]:
        return self.input.pfs_inputs

    @property
    def long_running(self) -> bool:
        """A spout or a service: code that runs on, under a supervisor, not once per job."""
        return self.spout is not None or self.service is not None

    @property
    def qname(self) -> str:
        """The pipeline's engine name (and its output repo's): ``name`` or ``project/name``."""
        return qualify(self.project, self.name)

    @functools.cached_property
    def input_branches(self) -> tuple[tuple[str, str], ...]:
        """Each (repo, branch) this pipeline reads, once, in spec order (engine repo names)."""
        return tuple(dict.fromkeys((p.qrepo, p.branch) for p in self.pfs_inputs))

    @property
    def input_repos(self) -> set[str]:
        return {p.qrepo for p in self.pfs_inputs}

    def to_json(self) -> str:
        return json.dumps(self.raw, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_raw(cls, raw: dict[str, Any]) -> "PipelineSpec":
        """The typed spec of an already validated camelCase dict (a stored spec)."""
        t = raw.get("transform") or {}
        par = raw.get("parallelismSpec") or {}
        project = (raw["pipeline"].get("project") or {}).get("name") or DEFAULT_PROJECT
        return cls(
            name=raw["pipeline"]["name"],
            project=project,
            description=raw.get("description", ""),
            transform=Transform(
                cmd=tuple(t.get("cmd") or ()), stdin=_opt_tuple(t.get("stdin")),
                err_cmd=tuple(t.get("errCmd") or ()), err_stdin=_opt_tuple(t.get("errStdin")),
                image=t.get("image") or None,
                env={k: str(v) for k, v in (t.get("env") or {}).items()},
                working_dir=t.get("workingDir") or None,
                accept_return_code=frozenset(int(c) for c in t.get("acceptReturnCode") or ()),
                datum_batching=bool(t.get("datumBatching"))),
            input=build_input(raw["input"], "input", project=project,
                              pipeline=raw["pipeline"]["name"]) if raw.get("input")
            else Input("none"),
            raw=raw,
            output_branch=raw.get("outputBranch") or DEFAULT_BRANCH,
            datum_tries=int(raw.get("datumTries") or DEFAULT_DATUM_TRIES),
            datum_timeout=parse_duration(raw.get("datumTimeout")),
            job_timeout=parse_duration(raw.get("jobTimeout")),
            parallelism=max(1, int(par.get("constant") or 1)),
            every_job=(raw.get("reprocessSpec") or "until_success") == "every_job",
            service=raw.get("service"),
            spout=raw.get("spout"),
        )

    @classmethod
    def from_json(cls, text: str) -> "PipelineSpec":
        return cls.from_raw(json.loads(text))


def _opt_tuple(value: Optional[Iterable[str]]) -> Optional[tuple[str, ...]]:
    return None if value is None else tuple(value)


def build_input(node: dict[str, Any], path: str = "input", *,
                project: str = DEFAULT_PROJECT, pipeline: str = "") -> Input:
    """The typed tree of a valid input dict (``field`` paths start at ``path``). A pfs input
    without a project reads the pipeline's ``project``, as in pachd; a cron input is also the
    pfs input of its tick repo."""
    if node.get("pfs"):
        p = node["pfs"]
        where = path + ".pfs"
        return Input("pfs", field=path, pfs=PfsInput(
            name=p.get("name") or p["repo"], repo=p["repo"], glob=p["glob"],
            branch=p.get("branch") or DEFAULT_BRANCH,
            project=(p.get("project") or project), commit=p.get("commit") or None,
            join_on=p.get("joinOn") or "", group_by=p.get("groupBy") or "",
            outer_join=bool(p.get("outerJoin")), field=where))
    if node.get("cron"):
        c = node["cron"]
        name = c.get("name") or ""
        repo = c.get("repo") or f"{pipeline}_{name}"
        where = path + ".cron"
        return Input("cron", field=path, cron=CronInput(
            name=name, spec=c.get("spec") or "", repo=qualify(project, repo),
            overwrite=bool(c.get("overwrite")), start=c.get("start") or "", field=where),
            pfs=PfsInput(name=name, repo=repo, glob="/*", project=project, field=where,
                         from_cron=True))
    for kind in COMBINATIONS:
        if node.get(kind):
            return Input(kind, field=path, children=tuple(
                build_input(c, f"{path}.{kind}[{i}]", project=project, pipeline=pipeline)
                for i, c in enumerate(node[kind])))
    raise SpecError(f"{path}: exactly one of {', '.join(INPUT_KINDS)} expected")


def parse_duration(text: Optional[str]) -> Optional[float]:
    """``"600s"`` -> 600.0 (the only form Pachyderm's schema allows); None when unset."""
    if not text:
        return None
    return float(str(text).rstrip("s"))


# -- validation ------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _validator():
    import jsonschema
    schema = json.loads((SCHEMA_DIR / "CreatePipelineRequest.schema.json").read_text())
    return jsonschema.Draft4Validator(schema)


def field_path(parts: Iterable) -> str:
    """``("input", "cross", 0, "pfs", "glob")`` -> ``input.cross[0].pfs.glob``."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def spec_name(spec: dict) -> str:
    p = spec.get("pipeline")
    return p.get("name", "?") if isinstance(p, dict) else "?"


def parse_spec(spec: dict, *, source: str = "<spec>") -> PipelineSpec:
    """Check a spec against Pachyderm's schema and the rules pachd enforces when it is created,
    and return it typed (snake_case keys accepted, stored as camelCase).

    Raises:
        SpecError: ``<source>: pipeline "<name>": <field>: <problem>``, all problems listed.
    """
    raw = camelize(spec)
    where = f"{source}: pipeline {json.dumps(spec_name(raw))}"
    problems = [f"{field_path(e.absolute_path)}: {e.message}" for e in sorted(
        _validator().iter_errors(raw), key=lambda e: list(map(str, e.absolute_path)))]
    if not problems:
        problems = semantic_problems(raw)
    if problems:
        raise SpecError(f"{where}: " + "; ".join(problems))
    return PipelineSpec.from_raw(raw)


def validate_spec(spec: dict, *, source: str = "<spec>") -> dict:
    """:func:`parse_spec`, returning the validated camelCase dict."""
    return parse_spec(spec, source=source).raw


def semantic_problems(spec: dict) -> list[str]:
    """What the schema cannot say: required fields, names, globs, duplicate input names."""
    out: list[str] = []
    name = (spec.get("pipeline") or {}).get("name")
    if not name:
        out.append("pipeline.name: missing; every pipeline needs a name")
    elif not NAME.match(name):
        out.append(f"pipeline.name: {name!r} is not a valid name (1-63 letters, digits, '_' or '-')")
    transform = spec.get("transform")
    if not transform:
        out.append("transform: missing; say what to run with transform.cmd")
    elif not transform.get("cmd"):
        out.append("transform.cmd: missing; the command to run, e.g. [\"python3\", \"/app.py\"]")
    for key in ("datumTimeout", "jobTimeout"):
        if key in spec and not _DURATION.match(str(spec[key])):
            out.append(f"{key}: {spec[key]!r} is not a duration in seconds like \"600s\"")
    inp = spec.get("input")
    if "spout" in spec:
        if inp:
            out.append("input: a spout has no input (its code makes the commits of its output "
                       "repo); drop input or spout")
        return out
    if not inp:
        out.append("input: missing; a pipeline reads at least one pfs input (a spout, none)")
        return out
    _check_input(inp, "input", out)
    project = ((spec.get("pipeline") or {}).get("project") or {}).get("name") or DEFAULT_PROJECT
    if not out and qualify(project, name) in {
            p.qrepo for p in build_input(inp, "input", project=project, pipeline=name).pfs_inputs}:
        out.append(f"input: the pipeline reads its own output repo {name!r} (a cycle)")
    return out


def _check_input(inp: dict, path: str, out: list[str]) -> None:
    kinds = [k for k in INPUT_KINDS if inp.get(k) not in (None, [], {})]
    if len(kinds) != 1:
        out.append(f"{path}: exactly one of {', '.join(INPUT_KINDS)} expected, got "
                   f"{', '.join(kinds) or 'none'}")
        return
    kind = kinds[0]
    if kind == "pfs":
        _check_pfs(inp["pfs"], path, out)
        return
    if kind == "cron":
        _check_cron(inp["cron"], path, out)
        return
    children = inp[kind]
    for i, child in enumerate(children):
        _check_input(child, f"{path}.{kind}[{i}]", out)
    if kind in ("cross", "join", "group"):
        seen: dict[str, int] = {}
        for i, child in enumerate(children):
            for nm in _raw_names(child):
                if nm in seen:
                    out.append(f"{path}.{kind}[{i}]: input name {nm!r} is also used by "
                               f"{path}.{kind}[{seen[nm]}]; give one a distinct \"name\"")
                seen.setdefault(nm, i)
    for i, child in enumerate(children):
        if kind == "join" and "pfs" in child and not child["pfs"].get("joinOn"):
            out.append(f"{path}.join[{i}].pfs.joinOn: missing; e.g. \"$1\" for the first "
                       "capture group of the glob")
        if kind == "group" and "pfs" in child and not child["pfs"].get("groupBy"):
            out.append(f"{path}.group[{i}].pfs.groupBy: missing; e.g. \"$1\"")


def _raw_names(inp: dict) -> list[str]:
    """:attr:`Input.names` of a dict that may still be invalid (for the checks above)."""
    if inp.get("pfs"):
        return [inp["pfs"].get("name") or inp["pfs"].get("repo") or ""]
    if inp.get("cron"):
        return [inp["cron"].get("name") or ""]
    return list(dict.fromkeys(n for kind in COMBINATIONS for child in inp.get(kind) or []
                              for n in _raw_names(child)))


def _check_cron(cron: dict, path: str, out: list[str]) -> None:
    nm = cron.get("name") or ""
    if not NAME.match(nm):
        out.append(f"{path}.cron.name: {nm!r} is not a valid input name (1-63 letters, digits, "
                   "'_' or '-')")
    if not cron.get("spec"):
        out.append(f"{path}.cron.spec: missing; a schedule like \"@every 60s\" or "
                   "\"*/10 * * * *\"")
    else:
        reason = check_schedule(cron["spec"])
        if reason:
            out.append(f"{path}.cron.spec: {reason}")
    if cron.get("repo") and not NAME.match(cron["repo"]):
        out.append(f"{path}.cron.repo: {cron['repo']!r} is not a valid repo name")


def _check_pfs(pfs: dict, path: str, out: list[str]) -> None:
    if not pfs.get("repo"):
        out.append(f"{path}.pfs.repo: missing; name the repo to read")
    if pfs.get("glob") in (None, ""):
        out.append(f"{path}.pfs.glob: missing; \"/\" reads the whole repo as one datum, "
                   "\"/*\" one datum per top-level entry")
    else:
        reason = check_glob(pfs["glob"])
        if reason:
            out.append(f"{path}.pfs.glob: {json.dumps(pfs['glob'])} is not a valid glob ({reason})")
    nm = pfs.get("name") or pfs.get("repo") or ""
    if nm and not NAME.match(nm):
        out.append(f"{path}.pfs.name: {nm!r} is not a valid input name")
