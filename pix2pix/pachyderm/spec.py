"""Pipeline spec files: loading (JSON or YAML, several documents separated by ``---`` lines or a
JSON array), snake_case -> camelCase, validation against Pachyderm's official JSON schema
(v2.11.6, draft-04, shipped in ``schema/``) and semantic checks. Shared by the embedded engine
and the cluster client, so a spec is judged the same way wherever it is going to run.

    load_spec_file(path) -> [(source, spec), ...]      source = "file.json" or "file.json#2"
    validate_spec(spec, source=...) -> spec (camelCase)  or SpecError naming file/pipeline/field

snake_case is accepted (converted to camelCase before validation) because pachctl accepts it too:
it decodes with Go protojson, which takes both the proto and the JSON name of every field.
"""
from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path
from typing import Any, Iterable

from pix2pix.errors import SpecError
from pix2pix.pachyderm.globs import check_glob

SCHEMA_DIR = Path(__file__).with_name("schema")
PIPELINE_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,63}$")
INPUT_KINDS = ("pfs", "cross", "union", "join", "group", "cron")
# Fields whose values are maps with user keys (env var names, labels): never rename inside them.
MAP_FIELDS = {"env", "annotations", "labels", "nodeSelector", "node_selector"}
_DURATION = re.compile(r"^([0-9]+\.?[0-9]*|\.[0-9]+)s$")


def load_spec_file(path: Path | str) -> list[tuple[str, dict]]:
    """Read every pipeline spec in a file. Raises SpecError naming the file (and document)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpecError(f"{path}: spec file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"{path}: cannot read spec file ({e})") from None
    return load_spec_text(text, source=str(path))


def load_spec_text(text: str, *, source: str = "<spec>") -> list[tuple[str, dict]]:
    """Parse a spec text: a JSON object, a JSON array of objects, or ``---``-separated
    JSON/YAML documents. Each result is (source, dict) with ``#N`` for the N-th document."""
    stripped = text.strip()
    if not stripped:
        raise SpecError(f"{source}: the spec file is empty")
    if stripped.startswith("["):
        docs = _parse_doc(stripped, source)
        if not isinstance(docs, list):
            raise SpecError(f"{source}: expected a JSON array of pipeline specs")
        parts = [(f"{source}#{i + 1}" if len(docs) > 1 else source, d) for i, d in enumerate(docs)]
    else:
        chunks = [c for c in re.split(r"(?m)^---[ \t]*$", text) if c.strip()]
        parts = []
        for i, chunk in enumerate(chunks):
            src = f"{source}#{i + 1}" if len(chunks) > 1 else source
            parts.append((src, _parse_doc(chunk, src)))
    out = []
    for src, doc in parts:
        if not isinstance(doc, dict):
            raise SpecError(f"{src}: a pipeline spec must be an object, not {type(doc).__name__}")
        out.append((src, doc))
    return out


def _parse_doc(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as je:
        if text.lstrip().startswith(("{", "[")):
            # JSON-looking text: YAML may still read it (pachctl uses a YAML decoder), but the
            # JSON error is the useful one if it does not.
            err = f"line {je.lineno} column {je.colno}: {je.msg}"
        else:
            err = None
    import yaml
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as ye:
        raise SpecError(f"{source}: not valid JSON or YAML ({err or str(ye).splitlines()[0]})") from None


def to_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def camelize(spec: Any) -> Any:
    """A copy with snake_case keys renamed to camelCase (not inside env/labels maps)."""
    if isinstance(spec, dict):
        out = {}
        for k, v in spec.items():
            key = to_camel(k) if isinstance(k, str) else k
            out[key] = copy.deepcopy(v) if key in MAP_FIELDS else camelize(v)
        return out
    if isinstance(spec, list):
        return [camelize(v) for v in spec]
    return spec


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


def validate_spec(spec: dict, *, source: str = "<spec>") -> dict:
    """Check a spec against Pachyderm's schema and the rules pachd enforces when it is created.

    Returns:
        The spec in camelCase.

    Raises:
        SpecError: ``<source>: pipeline "<name>": <field>: <problem>``, all problems listed.
    """
    spec = camelize(spec)
    name = spec_name(spec)
    where = f"{source}: pipeline {json.dumps(name)}"
    problems = [f"{field_path(e.absolute_path)}: {e.message}"
                for e in sorted(_validator().iter_errors(spec), key=lambda e: list(map(str, e.absolute_path)))]
    if not problems:
        problems = semantic_problems(spec)
    if problems:
        raise SpecError(f"{where}: " + "; ".join(problems))
    return spec


def semantic_problems(spec: dict) -> list[str]:
    """What the schema cannot say: required fields, names, globs, duplicate input names."""
    out: list[str] = []
    name = (spec.get("pipeline") or {}).get("name")
    if not name:
        out.append("pipeline.name: missing; every pipeline needs a name")
    elif not PIPELINE_NAME.match(name):
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
    if not inp:
        out.append("input: missing; a pipeline reads at least one pfs input")
    else:
        _check_input(inp, "input", out)
        if name and name in {p.get("repo") for p in pfs_inputs(inp)}:
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
        pfs = inp["pfs"]
        if not pfs.get("repo"):
            out.append(f"{path}.pfs.repo: missing; name the repo to read")
        if "glob" not in pfs or pfs.get("glob") in (None, ""):
            out.append(f"{path}.pfs.glob: missing; \"/\" reads the whole repo as one datum, "
                       "\"/*\" one datum per top-level entry")
        else:
            reason = check_glob(pfs["glob"])
            if reason:
                out.append(f"{path}.pfs.glob: {json.dumps(pfs['glob'])} is not a valid glob ({reason})")
        nm = pfs.get("name") or pfs.get("repo") or ""
        if nm and not PIPELINE_NAME.match(nm):
            out.append(f"{path}.pfs.name: {nm!r} is not a valid input name")
        return
    if kind == "cron":
        return
    children = inp[kind]
    for i, child in enumerate(children):
        _check_input(child, f"{path}.{kind}[{i}]", out)
    if kind in ("cross", "join", "group"):
        seen: dict[str, int] = {}
        for i, child in enumerate(children):
            for nm in input_names(child):
                if nm in seen:
                    out.append(f"{path}.{kind}[{i}]: input name {nm!r} is also used by "
                               f"{path}.{kind}[{seen[nm]}]; give one a distinct \"name\"")
                seen.setdefault(nm, i)
    for i, child in enumerate(children):
        if kind in ("join",) and "pfs" in child and not child["pfs"].get("joinOn"):
            out.append(f"{path}.join[{i}].pfs.joinOn: missing; e.g. \"$1\" for the first "
                       "capture group of the glob")
        if kind in ("group",) and "pfs" in child and not child["pfs"].get("groupBy"):
            out.append(f"{path}.group[{i}].pfs.groupBy: missing; e.g. \"$1\"")


def input_names(inp: dict) -> list[str]:
    """The /pfs folder names a datum of this input has (union: those of any branch)."""
    if "pfs" in inp and inp["pfs"]:
        return [inp["pfs"].get("name") or inp["pfs"].get("repo") or ""]
    if inp.get("cron"):
        return [inp["cron"].get("name") or ""]
    names: list[str] = []
    for kind in ("cross", "union", "join", "group"):
        for child in inp.get(kind) or []:
            for n in input_names(child):
                if n not in names:
                    names.append(n)
    return names


def pfs_inputs(inp: dict) -> list[dict]:
    """Every pfs input in an input tree, depth first, with ``name`` and ``branch`` defaulted."""
    if not inp:
        return []
    if inp.get("pfs"):
        p = dict(inp["pfs"])
        p.setdefault("branch", "master")
        p["branch"] = p["branch"] or "master"
        p["name"] = p.get("name") or p.get("repo")
        return [p]
    return [p for kind in ("cross", "union", "join", "group")
            for child in inp.get(kind) or [] for p in pfs_inputs(child)]
