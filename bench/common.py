"""Shared helpers: sizes, clean environments, timing, synthetic data, a registered champion."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

REPO = Path(__file__).resolve().parents[1]
PLUGINS = REPO / "plugins"
DAGS = REPO / "dags"
SEED_CSV = REPO / "include" / "data" / "point_samples.csv"
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
# Children compile bytecode into a private cache under the run's temp dir (this venv ships without .pyc and
# the environment sets PYTHONDONTWRITEBYTECODE, so every fresh process would otherwise recompile Airflow,
# MLflow, ... from source: ~10 s for ``import airflow.sdk`` alone). Set by ``bench.__main__``.
PYCACHE: dict[str, Path] = {}


@dataclass(frozen=True)
class Sizes:
    name: str
    scoring: tuple[int, ...]          # rows scored by score_unscored (throughput + memory)
    scoring_repeats: int
    naive_rows: int                   # subset for the one-INSERT-per-row baseline
    batch_size: int                   # fixed batch size of the throughput/memory figures
    batch_sweep: tuple[int, ...]
    sweep_rows: int
    monitoring_window: int
    monitoring_totals: tuple[int, ...]
    monitoring_repeats: int
    training_rows: int
    training_repeats: int
    parse_repeats: int
    load_repeats: int
    warmup: bool = True               # unmeasured warm-up runs that compile bytecode (skipped at tiny)


SIZES = {
    "tiny": Sizes("tiny", scoring=(2_000, 10_000), scoring_repeats=1, naive_rows=300, batch_size=1_000,
                  batch_sweep=(100, 1_000), sweep_rows=2_000, monitoring_window=500,
                  monitoring_totals=(500, 5_000), monitoring_repeats=3, training_rows=60, training_repeats=1,
                  parse_repeats=1, load_repeats=2, warmup=False),
    "small": Sizes("small", scoring=(10_000, 100_000), scoring_repeats=3, naive_rows=2_000, batch_size=10_000,
                   batch_sweep=(1_000, 10_000, 100_000), sweep_rows=100_000, monitoring_window=10_000,
                   monitoring_totals=(10_000, 100_000), monitoring_repeats=5, training_rows=500,
                   training_repeats=1, parse_repeats=3, load_repeats=5),
    "full": Sizes("full", scoring=(100_000, 1_000_000), scoring_repeats=3, naive_rows=10_000, batch_size=10_000,
                  batch_sweep=(1_000, 10_000, 100_000), sweep_rows=100_000, monitoring_window=10_000,
                  monitoring_totals=(10_000, 100_000, 1_000_000), monitoring_repeats=7, training_rows=500,
                  training_repeats=2, parse_repeats=5, load_repeats=7),
}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def scrub_environ() -> None:
    """The Makefile exports the repo's data dir and feature-store connection: never touch those."""
    for key in list(os.environ):
        if key.startswith(("CT_", "AIRFLOW_CONN_")):
            del os.environ[key]
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")


def child_env(data_dir: Path) -> dict[str, str]:
    """Environment of a benchmark subprocess: everything under ``data_dir``, nothing of the repo's data/."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CT_"))}
    if "dir" in PYCACHE:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE["dir"])
    env.update({
        "PYTHONPATH": os.pathsep.join([str(PLUGINS), str(REPO)]),
        "CT_DATA_DIR": str(data_dir),
        "AIRFLOW_HOME": str(data_dir / "airflow_home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "GIT_PYTHON_REFRESH": "quiet",
    })
    return env


def run_child(args: list[str], data_dir: Path, timeout: float = 1800) -> dict:
    """Run ``python -m bench._child <args>`` in a fresh interpreter; it prints one ``BENCH_RESULT {json}`` line."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "bench._child", *args], env=child_env(data_dir), cwd=data_dir,
                          capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"bench child {args[:2]} failed (rc={proc.returncode}):\n{proc.stderr[-4000:]}")
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_RESULT ")), None)
    if line is None:
        raise RuntimeError(f"bench child {args[:2]} printed no result:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    result = json.loads(line[len("BENCH_RESULT "):])
    result["process_wall_s"] = wall
    return result


def settings_for(data_dir: Path):
    from ct_operators.config import load_settings

    return load_settings({"data_dir": str(data_dir)}, environ={})


def open_store(path: Path):
    from ct_operators.store.sqlite import SqliteFeatureStore

    store = SqliteFeatureStore(path)
    store.init_schema()
    return store


def db_timestamps(n: int, start: datetime = T0, step_ms: int = 1000):
    """``n`` DB-format UTC timestamps (``YYYY-MM-DD HH:MM:SS.ffffff``), one every ``step_ms``."""
    import numpy as np

    base = np.datetime64(start.replace(tzinfo=None), "us")
    stamps = base + np.arange(n, dtype="int64") * np.timedelta64(step_ms * 1000, "us")
    return np.char.replace(np.datetime_as_string(stamps, unit="us"), "T", " ").tolist()


def synthetic_xy(n: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.uniform(50.0, 125.0, n)
    y = 1.2 * x + 9.0 + rng.normal(0.0, 4.0, n)
    return x, y


def bulk_insert_samples(store, n: int, start: datetime = T0, step_ms: int = 1000, seed: int = 0,
                        label: str = "bench") -> float:
    """Insert ``n`` labelled samples with executemany in one transaction (not through simulate); returns seconds."""
    x, y = synthetic_xy(n, seed)
    rows = list(zip(x.tolist(), y.tolist(), [label] * n, db_timestamps(n, start, step_ms)))
    conn = store.connect()
    try:
        started = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(store.sql["insert_sample"], rows)
        conn.commit()
        return time.perf_counter() - started
    finally:
        conn.close()


def execute_sql(store, *statements: str) -> None:
    conn = store.connect()
    try:
        conn.execute("BEGIN IMMEDIATE")
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


def register_champion(settings, stores: Sequence[Any]) -> str:
    """Fit the configured pipeline on synthetic data, register it, make it champion; point ``stores`` at it."""
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    from ct_operators import registry
    from ct_operators.training.model import build_pipeline
    from ct_operators.training.steps import _pip_requirements

    client = registry.connect(settings)
    experiment_id = registry.ensure_experiment(client, settings, settings.training_experiment)
    x, y = synthetic_xy(500, seed=1)
    X = pd.DataFrame({"x": x})
    pipeline = build_pipeline(settings.model_class, settings.model_params, settings.preprocessor_class).fit(X, y)
    with mlflow.start_run(experiment_id=experiment_id, run_name="bench-champion"):
        info = mlflow.sklearn.log_model(pipeline, name="model", signature=infer_signature(X, pipeline.predict(X)),
                                        input_example=X.head(3), registered_model_name=settings.registered_model_name,
                                        pip_requirements=_pip_requirements())
    version = str(info.registered_model_version)
    registry.set_champion(client, settings, version)
    for store in stores:
        registry.sync_serving_pointer(client, settings, store)
    return version


@dataclass
class Figure:
    """One row of the results table."""

    key: str
    figure: str
    value: float | None
    unit: str
    baseline: str
    baseline_value: float | None
    ratio: float | None
    target: str
    met: bool | None
    note: str = ""
    details: dict = field(default_factory=dict)
