"""DAG integrity (astro-cli style), generic over every ``dags/*.py`` file.

* the folder parses with Airflow's own ``DagBag`` without import errors, every file defines a DAG;
* every DAG has tags and ``retries >= 1`` in ``default_args``; every task retries, except the tasks in
  ``NO_RETRY_TASKS`` that deliberately do not;
* every DAG validates and serialises (what the DAG processor hands to the scheduler);
* importing a DAG file in a fresh interpreter pulls in none of the heavy libraries (they belong in
  ``execute``), and its parse time is printed (measured, not asserted).

Files whose name starts with ``_`` are treated as helper modules, not DAG files.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from ct_operators.config import PROJECT_ROOT

DAGS_DIR = PROJECT_ROOT / "dags"
PLUGINS_DIR = PROJECT_ROOT / "plugins"
DAG_FILES = sorted(p for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_"))
HEAVY_MODULES = ("mlflow", "sklearn", "shap", "pandas", "numpy", "matplotlib", "scipy")

# (dag_id, task_id) -> why it must not retry
NO_RETRY_TASKS = {
    ("ct_training", "validate_data"): "bad data does not get better on a retry",
}


def airflow_env(home: Path) -> dict[str, str]:
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS_DIR),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Airflow's DagBag over dags/, built with a throw-away AIRFLOW_HOME when Airflow is not yet loaded."""
    with pytest.MonkeyPatch.context() as mp:
        if "airflow" not in sys.modules:
            for key, value in airflow_env(tmp_path_factory.mktemp("airflow_home")).items():
                mp.setenv(key, value)
        from airflow.dag_processing.dagbag import DagBag

        yield DagBag(dag_folder=str(DAGS_DIR), safe_mode=False)


def dags_of(dagbag: Any, path: Path) -> list[Any]:
    return [d for d in dagbag.dags.values() if Path(d.fileloc).resolve() == path.resolve()]


def test_dags_folder_has_dag_files() -> None:
    assert DAG_FILES, f"no DAG files in {DAGS_DIR}"


def test_no_import_errors(dagbag: Any) -> None:
    assert dagbag.import_errors == {}, "\n\n".join(f"{k}:\n{v}" for k, v in dagbag.import_errors.items())


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_file_defines_a_dag(dagbag: Any, path: Path) -> None:
    assert dags_of(dagbag, path), f"{path.name} defines no DAG (or failed to import)"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_has_tags_and_retries(dagbag: Any, path: Path) -> None:
    for dag in dags_of(dagbag, path):
        assert dag.tags, f"DAG {dag.dag_id} has no tags"
        retries = (dag.default_args or {}).get("retries")
        assert isinstance(retries, int) and retries >= 1, \
            f"DAG {dag.dag_id}: default_args['retries'] must be >= 1, got {retries!r}"
        for task in dag.tasks:
            if (dag.dag_id, task.task_id) in NO_RETRY_TASKS:
                continue
            assert task.retries >= 1, (f"task {dag.dag_id}.{task.task_id} has retries={task.retries}; "
                                       "add it to NO_RETRY_TASKS with a reason if that is deliberate")


def test_no_retry_tasks_exist_and_do_not_retry(dagbag: Any) -> None:
    for (dag_id, task_id), why in NO_RETRY_TASKS.items():
        assert dag_id in dagbag.dags, f"{dag_id} not found (NO_RETRY_TASKS is stale)"
        task = dagbag.dags[dag_id].get_task(task_id)
        assert task.retries == 0, f"{dag_id}.{task_id} should not retry: {why}"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_validates_and_serialises(dagbag: Any, path: Path) -> None:
    from airflow.serialization.serialized_objects import DagSerialization

    for dag in dags_of(dagbag, path):
        dag.validate()
        restored = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
        assert restored.dag_id == dag.dag_id
        assert set(restored.task_dict) == set(dag.task_dict)


IMPORT_PROBE = """
import importlib.util, json, sys, time
path = sys.argv[1]
started = time.perf_counter()
import airflow.sdk  # the baseline every DAG file pays
baseline = time.perf_counter() - started
started = time.perf_counter()
spec = importlib.util.spec_from_file_location("dag_file_under_test", path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
elapsed = time.perf_counter() - started
heavy = sorted(h for h in json.loads(sys.argv[2]) if h in sys.modules)
print("DAG_IMPORT_PROBE " + json.dumps({"seconds": elapsed, "airflow_sdk": baseline, "heavy": heavy}))
"""


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_imports_no_heavy_modules(path: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CT_"))}
    env.update(airflow_env(tmp_path / "airflow_home"))
    env["PYTHONPATH"] = os.pathsep.join([str(PLUGINS_DIR), str(DAGS_DIR)])
    proc = subprocess.run([sys.executable, "-c", IMPORT_PROBE, str(path), json.dumps(HEAVY_MODULES)],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"importing {path.name} failed:\n{proc.stderr[-4000:]}"
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("DAG_IMPORT_PROBE "))
    result = json.loads(line[len("DAG_IMPORT_PROBE "):])
    with capsys.disabled():
        print(f"\n[dag parse time] {path.name}: {result['seconds']:.2f} s after import airflow.sdk "
              f"({result['airflow_sdk']:.2f} s); fresh interpreter, not asserted")
    assert result["heavy"] == [], f"importing {path.name} loads heavy module(s) {result['heavy']} at parse time"
