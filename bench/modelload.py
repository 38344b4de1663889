"""Model resolve + load for prediction: warm local cache vs cold (alias resolved, downloaded from MLflow)."""
from __future__ import annotations

import gc
import shutil
from pathlib import Path

from bench.common import (
    Figure, Sizes, execute_sql, log, median, open_store, register_champion, run_child, settings_for, timed,
)


def run(sizes: Sizes, root: Path) -> tuple[list[Figure], dict]:
    from ct_operators.serving import ModelCache, PredictionService
    from ct_operators.store.base import SERVING_POINTER_KEY

    data_dir = root / "model_load"
    settings = settings_for(data_dir)
    store = open_store(data_dir / "feature_store.db")
    register_champion(settings, [store])

    def load(expected: str) -> float:
        service = PredictionService(settings, store, cache=ModelCache(settings.model_cache_dir))
        gc.collect()
        seconds, (_, _, source) = timed(service.load_champion)
        if source != expected:
            raise RuntimeError(f"expected a load from {expected!r}, got {source!r}")
        return seconds

    def make_cold() -> None:
        shutil.rmtree(settings.model_cache_dir, ignore_errors=True)
        execute_sql(store, f"DELETE FROM ml_config WHERE config_key = '{SERVING_POINTER_KEY}'")

    make_cold()
    load("mlflow")  # warm-up: imports, MLflow's DB engine; not measured
    load("cache")
    cold, warm = [], []
    for _ in range(sizes.load_repeats):
        make_cold()
        cold.append(load("mlflow"))
        warm.append(load("cache"))
    c, w = median(cold), median(warm)
    log(f"model load: cold {c * 1000:.0f} ms, warm {w * 1000:.0f} ms (×{c / w:.1f})")
    fresh_cold, fresh_warm = [], []  # each load in a fresh process, as each ct_prediction task does it
    for _ in range(min(3, sizes.load_repeats)):
        make_cold()
        fresh_cold.append(run_child(["load", str(data_dir), "mlflow"], data_dir)["seconds"])
        fresh_warm.append(run_child(["load", str(data_dir), "cache"], data_dir)["seconds"])
    fc, fw = median(fresh_cold), median(fresh_warm)
    log(f"model load, fresh process: cold {fc * 1000:.0f} ms, warm {fw * 1000:.0f} ms (×{fc / fw:.1f})")
    shutil.rmtree(data_dir, ignore_errors=True)
    details = {"cold_seconds": cold, "warm_seconds": warm, "fresh_process_cold_seconds": fresh_cold,
               "fresh_process_warm_seconds": fresh_warm}
    return [Figure(
        key="model_load", figure="champion resolve + load, warm local cache (fresh ModelCache)",
        value=w * 1000, unit="ms", baseline="cold: alias resolved, serving pointer repaired, downloaded from MLflow",
        baseline_value=c * 1000, ratio=c / w, target="warm ≥ 5× faster", met=c / w >= 5,
        note=(f"ratio = cold / warm, both in one long-lived process (MLflow's DB engine already open). In a "
              f"fresh process per load, as each ct_prediction task runs: cold {fc * 1000:.0f} ms, warm "
              f"{fw * 1000:.0f} ms (×{fc / fw:.1f}; imports of MLflow and the model's libraries done before timing): "
              f"there the cold path also opens MLflow's store"),
        details=details)], details
