"""A self-contained HTML page of demo results: one row per input image."""
from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

from pix2pix.fsutil import atomic_write


@dataclass
class Row:
    name: str
    input: Path
    output: Path
    target: Path | None = None


def write_page(path: Path, *, rows: list[Row], title: str, notes: list[str]) -> Path:
    """Write ``path`` with image links relative to its folder (the images must live under it)."""
    base = path.parent

    def cell(p: Path | None) -> str:
        if p is None:
            return "<td>-</td>"
        rel = html.escape(p.relative_to(base).as_posix())
        return f'<td><a href="{rel}"><img src="{rel}" width="256"></a></td>'

    has_target = any(r.target for r in rows)
    head = "<tr><th>name</th><th>input</th><th>output</th>" + ("<th>target</th>" if has_target else "") + "</tr>"
    body = "\n".join(
        f"<tr><td>{html.escape(r.name)}</td>{cell(r.input)}{cell(r.output)}"
        + (cell(r.target) if has_target else "") + "</tr>"
        for r in rows)
    items = "\n".join(f"<li><pre>{html.escape(n)}</pre></li>" for n in notes)
    atomic_write(path,
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif}td{padding:4px;vertical-align:top}"
        "img{image-rendering:pixelated}pre{font-size:12px}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><table>{head}\n{body}</table><ul>{items}</ul></body></html>\n")
    return path
