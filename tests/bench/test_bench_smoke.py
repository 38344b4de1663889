"""Smoke test of the benchmark suite (issue 5): ``python -m bench --size tiny`` runs end to end and writes
RESULTS.md and results.json with every figure. Benchmarks are not tests: no timing is asserted here."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ct_operators.config import PROJECT_ROOT

EXPECTED_PREFIXES = ("scoring_vs_limit_", "scoring_vs_naive_", "scoring_batch_sweep", "scoring_peak_memory",
                     "monitoring_", "model_load", "dag_parse_", "training_compute")


def test_tiny_bench_writes_every_figure(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CT_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT / "plugins"), str(PROJECT_ROOT)])
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "bench", "--size", "tiny", "--out", str(out)], cwd=PROJECT_ROOT,
                          env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"bench failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"

    results = json.loads((out / "results.json").read_text())
    assert results["meta"]["size"] == "tiny" and not results["meta"]["failures"]
    figures = {f["key"]: f for f in results["figures"]}
    for prefix in EXPECTED_PREFIXES:
        assert any(k.startswith(prefix) for k in figures), f"no figure {prefix}* in results.json"
    dag_files = sorted(p.stem for p in (PROJECT_ROOT / "dags").glob("*.py") if not p.name.startswith("_"))
    assert {f"dag_parse_{stem}" for stem in dag_files} <= set(figures)
    for key, f in figures.items():
        if f["met"] is None:  # reported without a target
            assert f["note"], f"{key} has no reported value"
            continue
        for field in ("value", "baseline_value", "ratio"):
            assert isinstance(f[field], (int, float)) and f[field] == f[field] and f[field] > 0, (key, field, f)
        assert isinstance(f["met"], bool)
    assert "demo" in results

    markdown = (out / "RESULTS.md").read_text()
    assert "| figure | value | baseline |" in markdown
    for f in figures.values():
        assert f["figure"] in markdown, f"{f['key']} missing from RESULTS.md"
