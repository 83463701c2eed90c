"""Pipeline spec files: JSON or YAML, several documents separated by ``---`` lines or a JSON
array, and snake_case keys renamed to camelCase (pachctl accepts both: it decodes with Go
protojson, which takes the proto and the JSON name of every field).

    load_spec_file(path) -> [(source, dict), ...]     source = "file.json" or "file.json#2"

The dicts are not validated yet: :func:`pix2pix.pachyderm.spec.parse_spec` does that.
"""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

from pix2pix.errors import SpecError

# Fields whose values are maps with user keys (env var names, labels): never rename inside them.
MAP_FIELDS = {"env", "annotations", "labels", "nodeSelector", "node_selector"}


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
