"""Entry point of a containerised ``ct_training`` step: the same step function, inputs read from the
run folder (shared volume), output written there and printed as the last line (the XCom)."""
from __future__ import annotations

import json
from typing import Callable

from ct_operators.config import Settings, load_settings
from ct_operators.events import RunIds
from ct_operators.training import steps

# task id -> (step function, upstream task ids whose outputs it takes, in order)
CONTAINER_STEPS: dict[str, tuple[Callable[..., dict], tuple[str, ...]]] = {
    "train_model": (steps.train, ("prepare_data",)),
    "evaluate_model": (steps.evaluate, ("prepare_data", "train_model")),
}
PARAMS_FILE = "params"


def run_container_step(task_id: str, dag_id: str, run_id: str, base: Settings | None = None) -> dict:
    if task_id not in CONTAINER_STEPS:
        raise ValueError(f"task {task_id!r} cannot run in a container; choose one of {sorted(CONTAINER_STEPS)}")
    base = base or load_settings()
    ids = RunIds(dag_id=dag_id, run_id=run_id, task_id=task_id)
    settings = base.with_overrides(steps.load_output(base, ids, PARAMS_FILE))
    function, upstream = CONTAINER_STEPS[task_id]
    result = function(settings, ids, *(steps.load_output(settings, ids, up) for up in upstream))
    return steps.save_output(settings, ids, task_id, result)


def main(task_id: str, dag_id: str, run_id: str) -> int:
    print(json.dumps(run_container_step(task_id, dag_id, run_id), default=str), flush=True)
    return 0
