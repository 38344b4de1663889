"""Worker processes of the concurrency tests (``python reliability_worker.py <role> <json>``); prints one
``RESULT <json>`` line. Not a test module."""
from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path


def wait_for(go: Path, timeout_s: float = 600.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not go.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no start signal {go}")
        time.sleep(0.01)


def simulate(args: dict) -> dict:
    """Insert ``batches`` batches of drift-simulator points, one transaction each."""
    from ct_operators.config import load_settings
    from ct_operators.simulate import DriftSpec, insert_simulated
    from ct_operators.store.sqlite import SqliteFeatureStore

    settings = load_settings({"data_dir": args["data_dir"]}, environ={})
    store = SqliteFeatureStore(args["db"])
    wait_for(Path(args["go"]))
    inserted = []
    for i in range(args["batches"]):
        spec = DriftSpec(points=args["points"], seed=1000 + i, label=f"batch-{i}")
        inserted.append(insert_simulated(settings, store, spec, {"source": "worker"})["inserted"])
    return {"inserted": inserted}


def monitor(args: dict) -> dict:
    """One ct_monitoring evaluation, started at the same instant as its twin."""
    from ct_operators.config import load_settings
    from ct_operators.events import RunIds
    from ct_operators.monitoring import evaluate_champion
    from ct_operators.store.sqlite import SqliteFeatureStore

    settings = load_settings(args["settings"], environ={})
    store = SqliteFeatureStore(args["db"])
    from ct_operators import registry

    registry.connect(settings)  # imports and connects before the start signal
    Path(f"{args['go']}.{args['run_id']}.ready").touch()
    wait_for(Path(args["go"]))
    report = evaluate_champion(settings, store, RunIds("ct_monitoring", args["run_id"], "evaluate_champion"))
    return report.as_dict()


def promote(args: dict) -> dict:
    """``promote_model`` of one training run, as the task runs it (the test may kill this process)."""
    from ct_operators.config import load_settings
    from ct_operators.events import RunIds
    from ct_operators.store.sqlite import SqliteFeatureStore
    from ct_operators.training import steps

    settings = load_settings(args["settings"], environ={})
    ids = RunIds("ct_training", args["run_id"], "promote_model")
    return steps.promote(settings, SqliteFeatureStore(args["db"]), ids, args["decision"])


if __name__ == "__main__":
    role, payload = sys.argv[1], json.loads(sys.argv[2])
    try:
        result = {"ok": True, **{"simulate": simulate, "monitor": monitor, "promote": promote}[role](payload)}
    except BaseException as exc:  # reported to the test
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    print("RESULT " + json.dumps(result, default=str), flush=True)
