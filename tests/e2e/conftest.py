"""End-to-end fixtures: a throw-away Airflow home, feature store and MLflow store, and a runner
that executes ``ct_training`` with ``dag.test()`` in a fresh interpreter.

Each run is a subprocess because Airflow reads its configuration (AIRFLOW_HOME, the connection,
the DAGs folder) when it is first imported; the pytest process itself never imports Airflow here.
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

from ct_operators.config import PROJECT_ROOT, Settings, load_settings

RESULT_PREFIX = "CT_E2E_RESULT "
RUNNER = f"""
import json, sys
import importlib
dag_module = importlib.import_module(sys.argv[1])
conf = json.loads(sys.argv[2]) or None
dr = dag_module.dag.test(run_conf=conf)
print({RESULT_PREFIX!r} + json.dumps({{
    "run_id": dr.run_id, "state": str(dr.state),
    "tasks": {{ti.task_id: str(ti.state) for ti in dr.get_task_instances()}},
    "tries": {{ti.task_id: ti.try_number for ti in dr.get_task_instances()}},
}}), flush=True)
"""


@dataclass
class DagRunResult:
    run_id: str
    state: str
    tasks: dict[str, str]
    tries: dict[str, int]
    log: str = field(repr=False)

    def log_tail(self, chars: int = 6000) -> str:
        return self.log[-chars:]


@dataclass
class AirflowSandbox:
    """One Airflow home + feature store + MLflow store under ``root``, shared by a module's tests."""

    root: Path
    env: dict[str, str]
    settings: Settings
    runs: int = 0

    @property
    def store_path(self) -> Path:
        return self.settings.sqlite_path

    def run_dag(self, dag_module: str, conf: dict[str, Any] | None = None, timeout: int = 900) -> DagRunResult:
        self.runs += 1
        proc = subprocess.run([sys.executable, "-c", RUNNER, dag_module, json.dumps(conf or {})],
                              env=self.env, cwd=self.root, capture_output=True, text=True, timeout=timeout)
        log = proc.stdout + "\n" + proc.stderr
        (self.root / "logs").mkdir(exist_ok=True)
        (self.root / "logs" / f"{self.runs:02d}_{dag_module}.log").write_text(log, encoding="utf-8")
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
        if proc.returncode != 0 or not lines:
            raise AssertionError(f"dag.test() of {dag_module} did not complete (exit {proc.returncode}):\n"
                                 f"{log[-6000:]}")
        data = json.loads(lines[-1][len(RESULT_PREFIX):])
        return DagRunResult(log=log, **data)

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        with closing(sqlite3.connect(self.store_path)) as conn:
            return conn.execute(query, params).fetchall()


def sandbox_env(root: Path) -> dict[str, str]:
    data_dir = root / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CT_", "MLFLOW_"))}
    env.update({
        "CT_DATA_DIR": str(data_dir),
        "AIRFLOW_HOME": str(data_dir / "airflow"),
        "AIRFLOW_CONN_CT_FEATURE_STORE": json.dumps({"conn_type": "sqlite",
                                                     "host": str(data_dir / "feature_store.db")}),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # a failing task still retries as configured, but waits at most 1 s between tries
        "AIRFLOW__CORE__MAX_TASK_RETRY_DELAY": "1",
        "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT / "plugins"), str(PROJECT_ROOT / "dags")]),
    })
    return env


def _standalone_environment(data_dir: Path, **overrides: str) -> tuple[Settings, dict[str, str]]:
    """Settings and environment of an ``airflow standalone`` of its own (free ports) on fresh stores under
    ``data_dir``, none of this shell's AIRFLOW*/CT_* variables leaking in; Airflow's database migrated and
    the feature store initialised and seeded."""
    from ct_operators.local_airflow import airflow_environment, free_port, migrate, run

    settings = load_settings({"data_dir": str(data_dir)}, environ={})
    saved = dict(os.environ)
    for key in [k for k in os.environ if k.startswith(("AIRFLOW", "CT_"))]:
        os.environ.pop(key)
    try:
        env = airflow_environment(settings, free_port())
    finally:
        os.environ.clear()
        os.environ.update(saved)
    env.update(overrides)
    migrate(env)
    run([sys.executable, "-m", "ct_operators", "init-store"], env)
    return settings, env


@pytest.fixture
def standalone_environment():
    """``standalone_environment(data_dir, **env_overrides) -> (settings, env)`` for tests that start Airflow."""
    return _standalone_environment


@pytest.fixture(scope="module")
def airflow_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowSandbox]:
    """``airflow db migrate`` and ``python -m ct_operators init-store`` (schema + seed) in a fresh folder."""
    root = tmp_path_factory.mktemp("ct_e2e")
    env = sandbox_env(root)
    for cmd in ([sys.executable, "-m", "airflow", "db", "migrate"],
                [sys.executable, "-m", "ct_operators", "init-store"]):
        proc = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{' '.join(cmd[1:])} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    settings = load_settings({"data_dir": env["CT_DATA_DIR"]}, environ={})
    yield AirflowSandbox(root=root, env=env, settings=settings)
