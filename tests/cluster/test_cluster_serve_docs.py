"""docs/cluster.md's table of served RPCs is the one the server really serves: it is generated
from :func:`pix2pix.pachyderm.server.served` (``python tests/cluster/test_cluster_serve_docs.py``
rewrites it), and this test fails when the two differ."""
from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "cluster.md"
BEGIN, END = "<!-- served-rpcs:begin -->", "<!-- served-rpcs:end -->"


def render() -> str:
    from pix2pix.pachyderm.server import served
    lines = [BEGIN, "", "| service | served methods |", "|---|---|"]
    for service, methods in served().items():
        lines.append(f"| `{service}` | {', '.join(methods)} |")
    return "\n".join(lines + ["", END])


def test_docs_list_exactly_the_served_methods() -> None:
    text = DOC.read_text()
    assert BEGIN in text and END in text
    current = text[text.index(BEGIN):text.index(END) + len(END)]
    assert current == render(), f"docs/cluster.md's served-RPC table is stale: run python {__file__}"


if __name__ == "__main__":
    DOC.write_text(re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda m: render(),
                          DOC.read_text(), flags=re.S))
    print(f"wrote the served-RPC table into {DOC}")
