"""``ct_training`` compute: the seven operators' work, each in a fresh process (as the worker runs a task),
against a bare script running the same seven steps in one process."""
from __future__ import annotations

import shutil
from pathlib import Path

from bench._child import TRAINING_STEPS
from bench.common import SEED_CSV, Figure, Sizes, T0, bulk_insert_samples, log, median, open_store, run_child


def _data_dir(path: Path, rows: int) -> Path:
    """A fresh data dir: empty MLflow store, the seed CSV plus ``rows`` synthetic samples (same every time)."""
    shutil.rmtree(path, ignore_errors=True)
    store = open_store(path / "feature_store.db")
    store.load_seed_csv(SEED_CSV)
    bulk_insert_samples(store, rows, start=T0, step_ms=60_000, seed=7, label="a")
    return path


def run(sizes: Sizes, root: Path) -> tuple[list[Figure], dict]:
    if sizes.warmup:
        d = _data_dir(root / "training_warmup", 40)
        run_child(["bare", str(d), "bench__warmup"], d)  # unmeasured: bytecode of every lazily imported module
        shutil.rmtree(d, ignore_errors=True)
        log("training: warm-up run done")
    per_task: list[dict[str, float]] = []
    task_sums, task_process_walls, bare_runs, bare_walls, bare_steps = [], [], [], [], []
    for rep in range(sizes.training_repeats):
        run_id = f"bench__{rep}"
        order = ("tasks", "bare") if rep % 2 == 0 else ("bare", "tasks")
        for mode in order:
            if mode == "tasks":
                d = _data_dir(root / f"training_tasks_{rep}", sizes.training_rows)
                xcom = d / "xcom.json"
                steps, walls = {}, 0.0
                for name in TRAINING_STEPS:
                    result = run_child(["step", name, str(d), run_id, str(xcom)], d)
                    steps[name] = result["seconds"]
                    walls += result["process_wall_s"]
                per_task.append(steps)
                task_sums.append(sum(steps.values()))
                task_process_walls.append(walls)
                log(f"training (one process per task) #{rep}: sum of execute times {sum(steps.values()):.1f}s "
                    f"(processes {walls:.1f}s) " + ", ".join(f"{k} {v:.1f}" for k, v in steps.items()))
            else:
                d = _data_dir(root / f"training_bare_{rep}", sizes.training_rows)
                result = run_child(["bare", str(d), run_id], d)
                if not result["promoted"]:
                    raise RuntimeError("the bare training script did not promote its model")
                bare_runs.append(result["seconds"])
                bare_walls.append(result["process_wall_s"])
                bare_steps.append(result["per_step"])
                log(f"training (bare script, one process) #{rep}: {result['seconds']:.1f}s "
                    f"(process {result['process_wall_s']:.1f}s)")
            shutil.rmtree(d, ignore_errors=True)
    value, base = median(task_sums), median(bare_runs)
    details = {"rows": sizes.training_rows + 11, "task_seconds": per_task, "task_sums": task_sums,
               "task_process_walls": task_process_walls, "bare_seconds": bare_runs, "bare_process_walls": bare_walls,
               "bare_per_step": bare_steps}
    first_import = {name: median([t[name] for t in per_task]) - median([b[name] for b in bare_steps])
                    for name in TRAINING_STEPS}
    details["task_minus_bare_per_step"] = first_import
    figure = Figure(
        key="training_compute", figure=f"ct_training compute: sum of the 7 operators' execute times "
                                       f"({sizes.training_rows + 11} rows)",
        value=value, unit="s", baseline="a bare script, same 7 steps in one process", baseline_value=base,
        ratio=value / base, target="≤ 1.3×", met=value / base <= 1.3,
        note=(f"processes incl. interpreter start + DAG-file imports: {median(task_process_walls):.1f}s vs "
              f"{median(bare_walls):.1f}s; extra per task over the bare script: "
              + ", ".join(f"{k} {v:+.1f}s" for k, v in first_import.items())),
        details=details)
    return [figure], details
