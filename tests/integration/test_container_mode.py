"""Container execution (CT_EXECUTION_MODE=docker): no Docker engine runs here, so we check what the
DAG renders for DockerOperator, and run the container's entry point in a separate process to prove
it does the same work as the in-process operator."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ct_operators.config import PROJECT_ROOT, load_settings
from ct_operators.events import RunIds

INSPECT = """
import json, sys
sys.path.insert(0, sys.argv[1])
import ct_training
out = {}
for task_id in ("train_model", "evaluate_model", "validate_model"):
    t = ct_training.dag.get_task(task_id)
    out[task_id] = {
        "class": type(t).__name__, "image": getattr(t, "image", None), "command": getattr(t, "command", None),
        "environment": getattr(t, "environment", None), "private": sorted(getattr(t, "_private_environment", {}) or {}),
        "mounts": [dict(m) for m in getattr(t, "mounts", [])], "docker_url": getattr(t, "docker_url", None),
        "upstream": sorted(t.upstream_task_ids),
    }
print(json.dumps(out))
"""


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CT_"))}
    env.update({"CT_DATA_DIR": str(data_dir), "PYTHONPATH": str(PROJECT_ROOT / "plugins"),
                "AIRFLOW_HOME": str(data_dir / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW_CONN_CT_FEATURE_STORE": json.dumps({"conn_type": "sqlite", "host": str(data_dir / "fs.db"),
                                                             "password": "s3cret-not-logged"}),
                **extra})
    return env


def test_docker_mode_renders_container_steps(tmp_path):
    env = _env(tmp_path, CT_EXECUTION_MODE="docker", CT_DOCKER_IMAGE="registry.local/ct:1.2")
    proc = subprocess.run([sys.executable, "-c", INSPECT, str(PROJECT_ROOT / "dags")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    tasks = json.loads(proc.stdout.strip().splitlines()[-1])
    for task_id in ("train_model", "evaluate_model"):
        t = tasks[task_id]
        assert t["class"] == "ContainerStepOperator"
        assert t["image"] == "registry.local/ct:1.2"
        assert t["command"][:5] == ["python", "-m", "ct_operators", "run-step", task_id]
        assert t["docker_url"] == "tcp://docker-socket-proxy:2375"
        assert t["environment"]["CT_DATA_DIR"] == str(tmp_path.resolve())
        assert "AIRFLOW_CONN_CT_FEATURE_STORE" in t["private"]  # secrets never in the logged environment
        assert "s3cret" not in json.dumps(t["environment"])
        assert t["mounts"][0]["Target"] == str(tmp_path.resolve())
    assert tasks["train_model"]["upstream"] == ["prepare_data"]
    assert tasks["evaluate_model"]["upstream"] == ["train_model"]
    assert tasks["validate_model"]["class"] == "ValidateModelOperator"


def test_process_mode_is_the_default(tmp_path):
    proc = subprocess.run([sys.executable, "-c", INSPECT, str(PROJECT_ROOT / "dags")], env=_env(tmp_path),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["train_model"]["class"] == "TrainModelOperator"


def test_container_entry_point_does_the_training_work(tmp_path):
    """Upstream steps in this process, then train/evaluate through `python -m ct_operators run-step`."""
    from ct_operators import registry
    from ct_operators.store.sqlite import SqliteFeatureStore
    from ct_operators.store.types import TimeWindow
    from ct_operators.training import steps
    from ct_operators.training.container import PARAMS_FILE

    settings = load_settings({"data_dir": str(tmp_path)}, environ={})
    store = SqliteFeatureStore(tmp_path / "fs.db")
    store.init_schema()
    store.load_seed_csv(PROJECT_ROOT / "include" / "data" / "point_samples.csv")
    ids = RunIds("ct_training", "container_run_1")
    steps.save_output(settings, ids, PARAMS_FILE, {"reason": "test", "seed": 42})
    extracted = steps.save_output(settings, ids, "extract_data", steps.extract(settings, store, ids, TimeWindow()))
    validated = steps.save_output(settings, ids, "validate_data", steps.validate_data(settings, ids, extracted))
    steps.save_output(settings, ids, "prepare_data", steps.prepare(settings, ids, validated))

    outputs = {}
    for task_id in ("train_model", "evaluate_model"):
        proc = subprocess.run([sys.executable, "-m", "ct_operators", "run-step", task_id, "--dag-id", ids.dag_id,
                               "--run-id", ids.run_id], env=_env(tmp_path), capture_output=True, text=True,
                              timeout=300, cwd=PROJECT_ROOT)
        assert proc.returncode == 0, proc.stderr[-3000:]
        outputs[task_id] = json.loads(proc.stdout.strip().splitlines()[-1])  # DockerOperator's XCom: last line
        assert outputs[task_id] == steps.load_output(settings, ids, task_id)

    assert outputs["train_model"]["model_version"] == "1"
    assert outputs["evaluate_model"]["r2"] > 0.8
    client = registry.connect(settings)
    mv = client.get_model_version(settings.registered_model_name, "1")
    assert mv.tags["ct.explainer_uri"].startswith("models:/")
    decision = steps.validate_model(settings, ids, steps.load_output(settings, ids, "prepare_data"),
                                    outputs["train_model"])
    assert decision["promote"] is True
