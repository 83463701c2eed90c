"""Every third-party distribution the package imports is declared in setup.cfg, so that
``pip install .`` into a clean environment gives a package that imports (a distribution that
only arrives as a dependency of another may stop arriving with that one's next release)."""
from __future__ import annotations

import ast
import configparser
import importlib.metadata
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _canonical(name: str) -> str:
    """PEP 503 normalised distribution name (``PyYAML`` = ``pyyaml``, ``a_b`` = ``a-b``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(extras_only: bool = False) -> set[str]:
    """install_requires plus every extra of setup.cfg (or the extras alone), as canonical
    names."""
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    lines = [] if extras_only else cfg["options"]["install_requires"].splitlines()
    for extra in cfg["options.extras_require"].values():
        lines += extra.splitlines()
    names = set()
    for line in lines:
        m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line.split("#", 1)[0])
        if m:
            names.add(_canonical(m.group(1)))
    return names


def _imports() -> dict[str, set[str]]:
    """Absolute imports anywhere in pix2pix/ (top level, functions, try blocks): dotted module
    name -> the files that import it."""
    found: dict[str, set[str]] = {}
    for path in sorted((REPO / "pix2pix").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), filename=rel)):
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                found.setdefault(module, set()).add(rel)
    return found


def _distributions(module: str, providers: dict[str, list[str]]) -> list[str]:
    """The installed distributions that provide ``module``. A top-level name shared by several
    (a namespace package such as ``google``) is narrowed to those holding the module's files."""
    candidates = providers.get(module.split(".")[0], [])
    if len(candidates) <= 1:
        return candidates
    prefix = module.replace(".", "/") + "/"
    narrowed = [d for d in candidates
                if any(str(f).startswith(prefix) or str(f) == prefix[:-1] + ".py"
                       for f in importlib.metadata.distribution(d).files or [])]
    return narrowed or candidates


def test_every_imported_distribution_is_declared_in_setup_cfg():
    providers = importlib.metadata.packages_distributions()
    declared, optional = _declared(), _declared(extras_only=True)
    undeclared, unknown = {}, {}
    for module, files in _imports().items():
        top = module.split(".")[0]
        if top in sys.stdlib_module_names or top == "pix2pix":
            continue
        dists = _distributions(module, providers)
        if not dists and _canonical(top) in optional:
            continue  # an optional extra that is not installed here (wandb): declared, so fine
        if not dists:
            unknown[module] = sorted(files)
        elif not any(_canonical(d) in declared for d in dists):
            undeclared.setdefault("/".join(sorted(dists)), set()).update(files)
    assert not unknown, f"imported but not installed, so no distribution to declare: {unknown}"
    assert not undeclared, ("imported but not declared in setup.cfg install_requires or an "
                            f"extra: { {d: sorted(f) for d, f in undeclared.items()} }")


def test_the_check_sees_what_it_must():
    """The walk finds imports inside functions, and the setup.cfg reading finds the pins."""
    imports = _imports()
    assert "pix2pix/generate.py" in imports["python_pachyderm"]  # only inside a function there
    assert "google.protobuf" in imports
    assert {"tensorflow-cpu", "pyyaml", "pytest"} <= _declared()
    assert "wandb" in _declared(extras_only=True) and "pyyaml" not in _declared(extras_only=True)
