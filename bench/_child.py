"""Entry points run in a fresh interpreter (``python -m bench._child <mode> ...``); each prints
one ``BENCH_RESULT {json}`` line. Kept import-light: what a mode needs is imported inside it."""
from __future__ import annotations

import gc
import json
import sys
import time
from pathlib import Path

TRAINING_STEPS = ("extract_data", "validate_data", "prepare_data", "train_model", "evaluate_model",
                  "validate_model", "promote_model")


def _emit(result: dict) -> None:
    print("BENCH_RESULT " + json.dumps(result), flush=True)


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Linux: writing 5 to clear_refs resets VmHWM (peak RSS) to the current RSS."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


# -- memory ------------------------------------------------------------------------------------
def memory(data_dir: str, store_path: str, batch_size: str, mode: str) -> None:
    """Peak memory of scoring every unscored sample (``score``) or of holding the table as one DataFrame
    (``dataframe``). Run twice in this process: first peak RSS (VmHWM reset after start-up), then, on
    the same rows again, the tracemalloc peak (Python allocations only; tracemalloc's own bookkeeping
    would inflate RSS, hence two runs)."""
    import tracemalloc

    from bench.common import execute_sql, scrub_environ, settings_for
    from ct_operators.serving import PredictionService
    from ct_operators.store.sqlite import SqliteFeatureStore

    scrub_environ()
    settings = settings_for(Path(data_dir))
    store = SqliteFeatureStore(Path(store_path))
    service = PredictionService(settings, store)
    service.load_champion()  # imports and the model in memory first: both modes start from the same state

    def work() -> tuple[int, float | None]:
        if mode == "score":
            summary = service.score_unscored(batch_size=int(batch_size))
            return summary.scored, None
        if mode == "dataframe":
            frame = store.fetch_samples()
            return len(frame), float(frame.memory_usage(deep=True).sum()) / 2**20
        raise SystemExit(f"unknown memory mode {mode!r}")

    execute_sql(store, "DELETE FROM predictions")
    gc.collect()
    rss_before = _status_kb("VmRSS")
    reset = _reset_peak_rss()
    started = time.perf_counter()
    rows, frame_mb = work()
    seconds = time.perf_counter() - started
    rss_peak = _status_kb("VmHWM")

    execute_sql(store, "DELETE FROM predictions")
    gc.collect()
    tracemalloc.start()
    work()
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    execute_sql(store, "DELETE FROM predictions")
    _emit({"mode": mode, "rows": rows, "seconds": seconds, "batch_size": int(batch_size),
           "rss_before_kb": rss_before, "rss_peak_kb": rss_peak, "peak_reset": reset,
           "rss_delta_mb": ((rss_peak - rss_before) / 1024.0) if reset and rss_peak and rss_before else None,
           "traced_peak_mb": traced_peak / 2**20, "frame_mb": frame_mb})


# -- ct_training steps -------------------------------------------------------------------------
def run_step(name: str, settings, store_factory, ids, xcom: dict) -> dict:
    """One ``ct_training`` operator's work, exactly as its ``execute`` calls it."""
    from ct_operators.store.types import TimeWindow
    from ct_operators.training import steps

    if name == "extract_data":
        return steps.extract(settings, store_factory(), ids, TimeWindow())
    if name == "validate_data":
        return steps.validate_data(settings, ids, xcom["extract_data"])
    if name == "prepare_data":
        return steps.prepare(settings, ids, xcom["validate_data"])
    if name == "train_model":
        return steps.train(settings, ids, xcom["prepare_data"])
    if name == "evaluate_model":
        return steps.evaluate(settings, ids, xcom["prepare_data"], xcom["train_model"])
    if name == "validate_model":
        return steps.validate_model(settings, ids, xcom["prepare_data"], xcom["train_model"])
    if name == "promote_model":
        return steps.promote(settings, store_factory(), ids, xcom["validate_model"])
    raise SystemExit(f"unknown step {name!r}")


def step(name: str, data_dir: str, run_id: str, xcom_path: str) -> None:
    """One operator in a fresh process, as the worker runs it: the DAG file (airflow.sdk, the operator
    module) is already imported; ``execute`` imports the step module and everything it needs."""
    import airflow.sdk  # noqa: F401  (the worker parsed the DAG file before execute)
    import ct_operators.operators.training  # noqa: F401
    from ct_operators.config import load_settings
    from ct_operators.events import RunIds

    from bench.common import scrub_environ

    scrub_environ()
    path = Path(xcom_path)
    xcom = json.loads(path.read_text()) if path.exists() else {}
    started = time.perf_counter()  # == the operator's execute: settings, store, the step (with its imports)
    settings = load_settings({"data_dir": data_dir}, environ={})

    def store_factory():
        from ct_operators.store.sqlite import SqliteFeatureStore

        return SqliteFeatureStore(settings.sqlite_path)

    result = run_step(name, settings, store_factory, RunIds("ct_training", run_id, name), xcom)
    seconds = time.perf_counter() - started
    xcom[name] = result
    path.write_text(json.dumps(xcom, default=str))
    _emit({"step": name, "seconds": seconds})


def bare(data_dir: str, run_id: str) -> None:
    """A bare script: the same seven steps, same data, logging, evaluation and SHAP, in one process."""
    started = time.perf_counter()
    from ct_operators.config import load_settings
    from ct_operators.events import RunIds
    from ct_operators.store.sqlite import SqliteFeatureStore

    from bench.common import scrub_environ

    scrub_environ()
    settings = load_settings({"data_dir": data_dir}, environ={})
    xcom: dict = {}
    per_step = {}
    for name in TRAINING_STEPS:
        t0 = time.perf_counter()
        xcom[name] = run_step(name, settings, lambda: SqliteFeatureStore(settings.sqlite_path),
                              RunIds("ct_training", run_id, name), xcom)
        per_step[name] = time.perf_counter() - t0
    seconds = time.perf_counter() - started
    _emit({"seconds": seconds, "per_step": per_step, "promoted": bool(xcom["promote_model"].get("promoted"))})


def load(data_dir: str, expected: str) -> None:
    """Champion resolve + load in a fresh process, as a ct_prediction task does it (imports excluded)."""
    import importlib

    # the libraries a load imports lazily (the flavour, the unpickler: ~4.5 s of imports on this machine)
    # are imported first: the figure is resolve + load, not Python's import system
    for name in ("mlflow.pyfunc", "mlflow.sklearn", "skops.io", "sklearn.pipeline", "sklearn.preprocessing",
                 "sklearn.linear_model"):
        try:
            importlib.import_module(name)
        except ImportError:
            pass

    from bench.common import scrub_environ, settings_for
    from ct_operators.serving import ModelCache, PredictionService
    from ct_operators.store.sqlite import SqliteFeatureStore

    scrub_environ()
    settings = settings_for(Path(data_dir))
    store = SqliteFeatureStore(settings.sqlite_path)
    started = time.perf_counter()
    _, _, source = PredictionService(settings, store, cache=ModelCache(settings.model_cache_dir)).load_champion()
    seconds = time.perf_counter() - started
    if source != expected:
        raise SystemExit(f"expected a load from {expected!r}, got {source!r}")
    _emit({"seconds": seconds, "source": source})


MODES = {"memory": memory, "step": step, "bare": bare, "load": load}

if __name__ == "__main__":
    MODES[sys.argv[1]](*sys.argv[2:])
