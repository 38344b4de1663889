"""Monitoring query + metrics for a fixed window of labelled samples as the table grows."""
from __future__ import annotations

import gc
import shutil
import time
from datetime import timedelta
from pathlib import Path

from bench.common import Figure, Sizes, T0, bulk_insert_samples, log, median, open_store

MODEL, VERSION = "ct_point_regressor", "1"


def _fill(store, total: int, window: int) -> tuple:
    """``total - window`` older samples, then ``window`` recent ones; every sample predicted by the champion
    (the worst case: the look-back window, not the champion's version, is what excludes the old rows)."""
    older = total - window
    if older:
        bulk_insert_samples(store, older, start=T0, seed=2)
    window_start = T0 + timedelta(seconds=older) + timedelta(days=1)
    bulk_insert_samples(store, window, start=window_start, seed=3)
    conn = store.connect()
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO predictions (sample_id, predicted, model_name, model_version, mlflow_run_id, inference_ms,"
            " predicted_at) SELECT id, y + 1.0, ?, ?, 'bench', 0.001, event_ts FROM point_samples", (MODEL, VERSION))
        conn.commit()
    finally:
        conn.close()
    return window_start, window_start + timedelta(seconds=window)


def _plan(store, window) -> list[str]:
    conn = store.connect()
    try:
        rows = conn.execute("EXPLAIN QUERY PLAN " + store.sql["select_labelled_predictions"],
                            (MODEL, VERSION, *window.bounds())).fetchall()
        return [str(r[-1]) for r in rows]
    finally:
        conn.close()


def run(sizes: Sizes, root: Path) -> tuple[list[Figure], dict]:
    from ct_operators.store.types import TimeWindow
    from ct_operators.training.metrics import regression_scores

    data_dir = root / "monitoring"
    w = sizes.monitoring_window
    cases = {}
    for total in sizes.monitoring_totals:
        store = open_store(data_dir / f"feature_store_{total}.db")
        started = time.perf_counter()
        start, end = _fill(store, total, w)
        window = TimeWindow(start=start, end=end)
        cases[total] = (store, window)
        log(f"monitoring: {total:,} labelled, predicted samples ({w:,} in the window) in "
            f"{time.perf_counter() - started:.1f}s")

    def once(store, window) -> float:
        t0 = time.perf_counter()
        frame = store.fetch_labelled_predictions(MODEL, VERSION, window)
        regression_scores(frame["y"], frame["predicted"])
        elapsed = time.perf_counter() - t0
        if len(frame) != w:
            raise RuntimeError(f"window holds {len(frame)} rows, expected {w}")
        return elapsed

    times: dict[int, list[float]] = {t: [] for t in cases}
    for store, window in cases.values():
        once(store, window)  # warm-up: page cache, imports
    for _ in range(sizes.monitoring_repeats):  # interleaved so the sizes share the machine's noise
        for total, (store, window) in cases.items():
            gc.collect()
            times[total].append(once(store, window))
    base_total = sizes.monitoring_totals[0]
    base = median(times[base_total])
    details = {"window": w, "seconds": times, "median_seconds": {t: median(v) for t, v in times.items()},
               "query_plan": {t: _plan(s, win) for t, (s, win) in cases.items()}}
    figures = []
    for total in sizes.monitoring_totals[1:]:
        value = median(times[total])
        ratio = value / base
        plan = details["query_plan"][total]
        full_scans = [p for p in plan if p.startswith("SCAN") and "USING" not in p]
        figures.append(Figure(
            key=f"monitoring_{total}", figure=f"monitoring query + metrics, window {w:,} of {total:,} rows",
            value=value * 1000, unit="ms", baseline=f"the same at {base_total:,} rows", baseline_value=base * 1000,
            ratio=ratio, target="≤ 1.5×", met=ratio <= 1.5,
            note="plan: " + "; ".join(plan) + (" (full scan!)" if full_scans else ""),
            details={"seconds": times[total], "plan": plan}))
        log(f"monitoring {total:,}: {value * 1000:.1f} ms vs {base * 1000:.1f} ms at {base_total:,} (×{ratio:.2f})")
    shutil.rmtree(data_dir, ignore_errors=True)
    return figures, details
