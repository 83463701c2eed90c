"""The engine's structure, as docs/engine.md maps it: its modules import each other without a
cycle, SQL is written only in the store layer, errors become gRPC codes by class (not by
matching their text), and every module stays short enough to read or says why it is not."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from engine_testlib import REPO_ROOT

ENGINE = REPO_ROOT / "pix2pix" / "pachyderm"
STORE = ENGINE / "store"
MAX_LINES = 500
SQL = re.compile(r"\b(SELECT\s+.+\s+FROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|"
                 r"DELETE\s+FROM|CREATE\s+TABLE|ALTER\s+TABLE)\b", re.I)


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(ENGINE.rglob("*.py")):
        name = ".".join(p.relative_to(REPO_ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = p
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Engine modules ``name`` imports anywhere in its source (type-checking blocks and
    function bodies included: a cycle there is still a cycle to a reader)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()

    def owner(dotted: str) -> str | None:
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(filter(None, (owner(a.name) for a in node.names)))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            for a in node.names:  # `from pkg import module` imports the module
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in known else owner(base))
    found.discard(None)
    found.discard(name)
    return found


def test_no_import_cycle_inside_the_engine():
    mods = _modules()
    graph = {m: _imports(m, p, set(mods)) for m, p in mods.items()}
    import graphlib
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as e:
        pytest.fail(f"engine modules import each other in a cycle: {' -> '.join(e.args[1])}")


def test_sql_is_written_only_in_the_store_layer():
    stray = [str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "pix2pix").rglob("*.py")
             if STORE not in p.parents and SQL.search(p.read_text())]
    assert stray == [], f"SQL outside pix2pix/pachyderm/store/: {stray}"


def test_errors_map_to_grpc_codes_by_class():
    from pix2pix import errors
    from pix2pix.pachyderm.server_base import status_for
    import grpc
    for cls in vars(errors).values():
        if isinstance(cls, type) and issubclass(cls, errors.Pix2PixError):
            # Same class, any message: same code (no matching on the English text).
            codes = {status_for(cls(msg)) for msg in ("x not found", "already exists", "is open", "")}
            assert codes == {grpc.StatusCode[cls.grpc_status]}, cls.__name__
    assert "import re" not in (ENGINE / "server_base.py").read_text()


def test_modules_stay_readable_or_say_why():
    long = []
    for p in sorted((REPO_ROOT / "pix2pix").rglob("*.py")):
        n = len(p.read_text().splitlines())
        doc = ast.get_docstring(ast.parse(p.read_text())) or ""
        if n > MAX_LINES and "over 500 lines" not in doc:
            long.append(f"{p.relative_to(REPO_ROOT)} ({n} lines)")
    assert long == [], f"modules over {MAX_LINES} lines without a reason in their docstring: {long}"
