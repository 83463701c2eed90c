"""The README's layout section names what is in the tree, and the tree holds what it names."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _layout() -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Layout"):]
    return section[section.index("```") + 3:section.index("```", section.index("```") + 3)]


def test_every_package_folder_and_module_is_in_the_layout():
    layout = _layout()
    names = {p.name for p in (REPO / "pix2pix").iterdir()
             if (p.is_dir() and (p / "__init__.py").exists())
             or (p.suffix == ".py" and p.stem not in ("__init__", "__main__"))}
    missing = sorted(n for n in names if not re.search(rf"(^|\s){re.escape(n)}/?(\s|$)", layout,
                                                       re.M))
    assert not missing, f"README layout does not name: {missing}"


def test_every_name_in_the_layout_exists():
    for line in _layout().splitlines():
        indent = len(line) - len(line.lstrip())
        first = line.split()[0] if line.split() else ""
        if not first or "*" in first:
            continue
        base = REPO if indent == 0 else REPO / "pix2pix"
        if indent >= 4:
            base = REPO / "pix2pix" / "pachyderm"
        for name in line.split("  ")[0].split():
            assert (base / name.rstrip("/")).exists(), f"README layout names {name}, not in {base}"
