"""DAG file parse time, each file in a fresh interpreter, against an empty DAG file with the same
``airflow.sdk`` imports (a DAG with one EmptyOperator)."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
import time
from pathlib import Path

from bench.common import DAGS, Figure, Sizes, child_env, log, median

PROBE = """
import importlib.util, json, sys, time
started = time.perf_counter()
import airflow.sdk
sdk = time.perf_counter() - started
started = time.perf_counter()
spec = importlib.util.spec_from_file_location("dag_file_under_bench", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
own = time.perf_counter() - started
print("BENCH_RESULT " + json.dumps({"sdk": sdk, "own": own}))
"""


def empty_twin(dag_file: Path) -> str:
    """An empty DAG file importing from airflow.sdk exactly what ``dag_file`` imports from it."""
    tree = ast.parse(dag_file.read_text())
    sdk_imports = [n for n in tree.body if isinstance(n, ast.ImportFrom) and n.module == "airflow.sdk"]
    names = {a.name for n in sdk_imports for a in n.names}
    lines = [ast.unparse(n) for n in sdk_imports] + ([] if "DAG" in names else ["from airflow.sdk import DAG"])
    return "\n".join([
        '"""Empty twin of a DAG file: the same airflow.sdk imports, one EmptyOperator."""',
        "from __future__ import annotations", "", "from datetime import datetime", "",
        "from airflow.providers.standard.operators.empty import EmptyOperator", *lines, "",
        f'with DAG(dag_id="empty_{dag_file.stem}", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):',
        '    EmptyOperator(task_id="noop")', ""])


def _probe(path: Path, home: Path) -> dict:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", PROBE, str(path)], env=child_env(home), cwd=home,
                          capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"parsing {path.name} failed:\n{proc.stderr[-3000:]}")
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_RESULT "))
    return {**json.loads(line[len("BENCH_RESULT "):]), "process": wall}


def run(sizes: Sizes, root: Path) -> tuple[list[Figure], dict]:
    home = root / "dagparse"
    (home / "twins").mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))
    twins = {}
    for f in files:
        twins[f.name] = home / "twins" / f"empty_{f.name}"
        twins[f.name].write_text(empty_twin(f))
    for f in files if sizes.warmup else files[:1]:  # warm-up: airflow.cfg under AIRFLOW_HOME, bytecode
        _probe(f, home)
        _probe(twins[f.name], home)
    runs: dict[str, dict[str, list[dict]]] = {f.name: {"dag": [], "empty": []} for f in files}
    for _ in range(sizes.parse_repeats):
        for f in files:  # file and its twin back to back: they share the machine's noise
            runs[f.name]["dag"].append(_probe(f, home))
            runs[f.name]["empty"].append(_probe(twins[f.name], home))
    figures, details = [], {}
    for f in files:
        own = median([r["own"] for r in runs[f.name]["dag"]])
        own_empty = median([r["own"] for r in runs[f.name]["empty"]])
        proc = median([r["process"] for r in runs[f.name]["dag"]])
        proc_empty = median([r["process"] for r in runs[f.name]["empty"]])
        sdk = median([r["sdk"] for r in runs[f.name]["dag"] + runs[f.name]["empty"]])
        details[f.name] = {"runs": runs[f.name], "own_s": own, "own_empty_s": own_empty, "process_s": proc,
                           "process_empty_s": proc_empty, "import_airflow_sdk_s": sdk}
        figures.append(Figure(
            key=f"dag_parse_{f.stem}", figure=f"DAG file parse time: {f.name} (fresh process)",
            value=own * 1000, unit="ms", baseline="empty DAG file, same airflow.sdk imports",
            baseline_value=own_empty * 1000, ratio=own / own_empty, target="≤ 1.5×", met=own / own_empty <= 1.5,
            note=(f"module exec after `import airflow.sdk` ({sdk * 1000:.0f} ms, paid by both); whole fresh "
                  f"process: {proc:.2f}s vs {proc_empty:.2f}s (×{proc / proc_empty:.2f})"),
            details=details[f.name]))
        log(f"dag parse {f.name}: {own * 1000:.0f} ms vs empty {own_empty * 1000:.0f} ms (×{own / own_empty:.2f}); "
            f"process {proc:.2f}s vs {proc_empty:.2f}s")
    return figures, details
