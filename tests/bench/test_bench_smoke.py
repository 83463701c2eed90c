"""Plumbing of bench/run.py: children, tables, results files. No timings are asserted."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run_mod():
    spec = importlib.util.spec_from_file_location("bench_run", REPO / "bench" / "run.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_child_returns_its_json_line_with_wall_rss_and_command(run_mod, tmp_path):
    bench = run_mod.Bench(shared=tmp_path / "shared", tmp=tmp_path, quick=True, log=lambda s: None)
    code = "import json; print('noise'); print(json.dumps({'x': 1}))"
    result, wall, rss, idx = bench.child([sys.executable, "-c", code], key="k")
    assert result["x"] == 1 and wall > 0 and rss > 0
    assert bench.commands[idx].startswith("python -c")
    assert bench.raw["k"][0]["_command"] == idx


def test_failed_child_raises_with_its_output(run_mod, tmp_path):
    bench = run_mod.Bench(shared=tmp_path, tmp=tmp_path, quick=True, log=lambda s: None)
    with pytest.raises(run_mod.ChildError, match="boom"):
        bench.child([sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"], key="k")


def test_commands_name_no_machine_path(run_mod, tmp_path):
    bench = run_mod.Bench(shared=REPO.parent / "shared", tmp=tmp_path, quick=True,
                          log=lambda s: None)
    shown = bench.show([sys.executable, REPO / "bench" / "figures.py", "--out", tmp_path / "m",
                        REPO.parent / "shared" / "bench" / "tf_reference.py"])
    assert shown == "python bench/figures.py --out $TMP/m ../shared/bench/tf_reference.py"


def test_table_has_every_row_and_the_target_verdict(run_mod):
    rows = [run_mod.Row("1 b1", "project / TF reference (train)", 1.42, "x", ">= 1.3", True, [0, 1]),
            run_mod.Row("5", "peak RSS", 3.5, "GiB", "<= 3", False, [2])]
    md = run_mod.table(rows, markdown=True).splitlines()
    assert len(md) == 4 and "| yes |" in md[2] and "| NO |" in md[3] and "[0],[1]" in md[2]
    text = run_mod.table(rows, markdown=False)
    assert "peak RSS" in text and "NO" in text


def test_every_figure_names_its_cpu_flags_peaks_and_load(run_mod, tmp_path):
    info = {"cpu": "Some CPU", "cpus": 2, "cpu_flags": ["avx2", "amx_bf16"]}
    rows = [run_mod.Row("1", "attainable peak, float32 GEMM", 500.0, "GFLOP/s"),
            run_mod.Row("1", "attainable peak, bfloat16 GEMM", 900.0, "GFLOP/s")]
    line = run_mod.cpu_line(info, rows)
    assert line == ("Some CPU (2 CPUs; flags: avx2 amx_bf16), GEMM peaks measured in the run: "
                    "500 GFLOP/s float32, 900 GFLOP/s bfloat16")
    bench = run_mod.Bench(shared=tmp_path, tmp=tmp_path, quick=True, log=lambda s: None)
    *_, idx = bench.child([sys.executable, "-c", "print('{}')"], key="k")
    bench.add("9", "m", 1.0, commands=[idx])
    assert bench.rows[0].load == round(bench.loads[idx], 2) >= 0
    assert "| 9 | m | 1 |" in run_mod.table(bench.rows, markdown=True)


def test_only_rejects_unknown_figures():
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "run.py"), "--only", "7"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "figure numbers are 1 to 6" in proc.stderr


@pytest.mark.slow
def test_quick_figure_4_writes_results(tmp_path):
    """The engine figure end to end with --quick: latest.json and the markdown table."""
    md = tmp_path / "RESULTS.md"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "run.py"), "--quick", "--only", "4",
                           "--results", str(tmp_path), "--markdown", str(md)],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    data = json.loads((tmp_path / "latest.json").read_text())
    measures = [r["measure"] for r in data["rows"]]
    assert any("20+1 / 0+1" in m for m in measures)
    assert data["commands"] and all(str(REPO.parent) not in c for c in data["commands"])
    assert "| 4 |" in md.read_text()
