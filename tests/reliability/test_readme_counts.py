"""The README's reliability table states how many faults, bad inputs and hostile paths are tried.
Those numbers come from tests/reliability/count_cases.py; this keeps them true as tests come and
go, and catches a referenced test that was renamed away (it would silently leave the count)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROWS = {"fault": "faults injected", "bad_input": "bad inputs tried", "hostile": "hostile paths tried"}


def test_readme_reliability_counts_are_the_collected_cases():
    run = subprocess.run([sys.executable, str(REPO / "tests/reliability/count_cases.py")],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    counted = {m[0]: (int(m[1]), int(m[3])) for m in
               re.findall(r"^\| (\w+) \| (\d+) \| (\d+) \| (\d+) \|$", run.stdout, re.M)}
    assert set(counted) == set(ROWS), run.stdout[-2000:]
    readme = (REPO / "README.md").read_text()
    for kind, label in ROWS.items():
        row = re.search(rf"^\| {re.escape(label)} .*?\| (\d+) \| (\d+) \|$", readme, re.M)
        assert row, f"README has no reliability row starting {label!r}"
        total, ours = int(row[1]), int(row[2])
        assert (total, ours) == (counted[kind][1], counted[kind][0]), (
            f"README says {label}: {total} cases, {ours} in tests/reliability; "
            f"count_cases.py counts {counted[kind][1]} and {counted[kind][0]}")
