"""``python -m bench [--size tiny|small|full] [--out DIR]``: run the benchmarks, write RESULTS.md + results.json."""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

BENCHMARKS = ("scoring", "monitoring", "modelload", "dagparse", "training")
DEFAULT_SIZE = "small"

METHOD_NOTES = [
    "All state lives in a temporary data dir (MLflow: SQLite tracking store under it); the repository's "
    "`data/` is only read for `demo_summary.json`. Samples are generated with one `executemany` "
    "transaction, not through simulate.",
    "Scoring throughput = `ScoringSummary.seconds` of `PredictionService.score_unscored` (the read → predict "
    "→ write loop; the champion is loaded from the warm local cache before). The limit = `model.predict` on "
    "all rows at once + one `executemany` of the prebuilt prediction tuples in one transaction into the same "
    "table (same indexes, same connection settings). The naive way: one INSERT + COMMIT per row for a "
    "subset of the same (already predicted) rows, measured after each repetition so it shares that "
    "repetition's disk latency (fsync cost varied ~10× between runs on this shared machine); rows/s "
    "extrapolated.",
    "Peak memory: a fresh process per case loads the champion first, then measures (1) the peak RSS "
    "increase (VmHWM reset via /proc/self/clear_refs) and (2) the tracemalloc peak of the same work; "
    "the target is judged on the tracemalloc peak growing ≤ 1.5× while the table grows 10×.",
    "Monitoring: every sample (in and outside the window) is labelled and predicted by the champion "
    "version, so only the time window excludes old rows (the look-back case, the worst for the query).",
    "ct_training: each of the 7 step functions (training/steps.py) in its own fresh process with the "
    "DAG file's modules (airflow.sdk, ct_operators.operators.training) already imported, timing what "
    "the operator's `execute` does (settings, store, `import steps`, the step); vs one process running "
    "the 7 steps (timed from before its imports). Both start from a fresh data dir with the same data. "
    "An unmeasured warm-up run compiles bytecode first.",
    "Bytecode: `make venv` compiles it at install time (`uv pip install --compile-bytecode`), because the "
    "environment may set PYTHONDONTWRITEBYTECODE=1 and a process without .pyc files recompiles what it "
    "imports (`import airflow.sdk` alone: ~10 s instead of <2 s). Subprocesses here also use a private "
    "bytecode cache (PYTHONPYCACHEPREFIX under the temp dir) so they measure the code, not the compiler.",
    "DAG parse: `python -c` probe per file in a fresh process: time of the module's execution after "
    "`import airflow.sdk` (what the DAG processor pays per file, it has Airflow imported); the empty twin "
    "has the same `from airflow.sdk import ...` lines and one EmptyOperator. Whole-process times are in "
    "the notes.",
    "Model load: `PredictionService(...).load_champion()` with a fresh `ModelCache` each time; cold = "
    "cache dir deleted and serving pointer removed (so the alias is resolved through the registry and the "
    "model downloaded from the MLflow store); warm = cache dir filled, pointer set.",
]


def main(argv: list[str] | None = None) -> int:
    from bench.common import PLUGINS, PYCACHE, SIZES, log, scrub_environ

    if str(PLUGINS) not in sys.path:  # `make bench` puts plugins/ on PYTHONPATH; a bare `python -m bench` may not
        sys.path.insert(0, str(PLUGINS))

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--size", choices=sorted(SIZES), default=DEFAULT_SIZE,
                        help=f"tiny: seconds-scale smoke run; small: 10^5 rows; full: the issue's sizes "
                             f"(default {DEFAULT_SIZE})")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                        help="where RESULTS.md and results.json go (default: bench/)")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help=f"comma-separated subset of {BENCHMARKS}")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data dir")
    args = parser.parse_args(argv)
    only = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = set(only) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}")

    scrub_environ()
    sizes = SIZES[args.size]
    root = Path(tempfile.mkdtemp(prefix="ct-bench-"))
    PYCACHE["dir"] = root / "pycache"
    started = time.time()
    log(f"size {args.size}, temp data dir {root}")
    import importlib

    figures, details, failures = [], {}, {}
    try:
        for name in only:
            log(f"--- {name}")
            t0 = time.perf_counter()
            try:
                module = importlib.import_module(f"bench.{name}")
                figs, det = module.run(sizes, root)
                figures += figs
                details[name] = det
            except Exception:  # a broken benchmark must not hide the others' results
                failures[name] = traceback.format_exc()
                log(f"{name} FAILED:\n{failures[name]}")
            details.setdefault("seconds", {})[name] = time.perf_counter() - t0
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    from bench import report

    meta = {"size": args.size, "started": datetime.fromtimestamp(started, timezone.utc).strftime("%Y-%m-%d %H:%M"),
            "duration_s": time.time() - started, "sizes": sizes.__dict__,
            "machine": f"{os.cpu_count()} CPUs, Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}",
            "failures": failures, "default_size": DEFAULT_SIZE}
    report.write(args.out, meta, figures, details, METHOD_NOTES)
    log(f"wrote {args.out / 'RESULTS.md'} and {args.out / 'results.json'} in {meta['duration_s'] / 60:.1f} min")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
