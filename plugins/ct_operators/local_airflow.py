"""Run the embedded deployment: ``airflow standalone`` (UI + REST API on :8080) and the MLflow UI (:5000).

Talks to Airflow only through its CLI and REST API (no Airflow import), so it works from any shell.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ct_operators.config import PROJECT_ROOT, Settings

BIN = Path(sys.executable).parent


def airflow_environment(settings: Settings, port: int = 8080) -> dict[str, str]:
    """Environment for every Airflow process: all state under the data dir, our DAGs and plugins."""
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(settings.data_dir / "airflow"),
        "CT_DATA_DIR": str(settings.data_dir),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://localhost:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
        "PATH": os.pathsep.join([str(BIN), env.get("PATH", "")]),  # standalone spawns `airflow` by name
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT / "plugins"), env.get("PYTHONPATH", "")])),
    })
    if port != 8080:  # a second instance on this machine (tests): its log servers need their own ports too
        env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(free_port())
        env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"] = str(free_port())
    env.setdefault("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    env.setdefault("AIRFLOW__CORE__PARALLELISM", "4")
    env.setdefault("AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL", "30")
    env.setdefault("AIRFLOW_CONN_" + settings.feature_store_conn_id.upper(),
                   json.dumps({"conn_type": "sqlite", "host": str(settings.sqlite_path)}))
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class AirflowProcess:
    process: subprocess.Popen
    log_path: Path
    base_url: str
    env: dict[str, str]

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM the whole process group (standalone and the scheduler, API server... it spawned),
        wait until every member is gone, SIGKILL what is left after ``timeout_s``."""
        pgid = self.process.pid
        _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _group_alive(pgid) and time.monotonic() < deadline:
            self.process.poll()  # reap the leader so it does not linger as a zombie
            time.sleep(0.5)
        if _group_alive(pgid):
            _signal_group(pgid, signal.SIGKILL)
        self.process.wait(timeout=10)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group is already gone: nothing to stop
        os.killpg(pgid, sig)


def migrate(env: dict[str, str]) -> None:
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    run([str(BIN / "airflow"), "db", "migrate"], env)


def run(cmd: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


def start_standalone(env: dict[str, str], log_path: Path, port: int = 8080) -> AirflowProcess:
    """``airflow standalone`` in its own process group, logging to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")
    proc = subprocess.Popen([str(BIN / "airflow"), "standalone"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    return AirflowProcess(proc, log_path, f"http://localhost:{port}", env)


def start_mlflow_ui(settings: Settings, log_path: Path, port: int = 5000) -> subprocess.Popen:
    log = open(log_path, "ab")
    return subprocess.Popen(
        [str(BIN / "mlflow"), "ui", "--backend-store-uri", settings.tracking_uri,
         "--default-artifact-root", settings.artifact_root.as_uri(), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


class AirflowApi:
    """Just enough of the Airflow 3 REST API (v2) for the demo and `make up`."""

    def __init__(self, base_url: str, airflow_home: Path, username: str = "admin") -> None:
        self.base_url = base_url.rstrip("/")
        self.airflow_home = airflow_home
        self.username = username
        self._token: str | None = None

    def password(self) -> str:
        path = self.airflow_home / "simple_auth_manager_passwords.json.generated"
        return json.loads(path.read_text())[self.username]

    def _request(self, method: str, path: str, body: Any = None, auth: bool = True) -> Any:
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base_url + path, data=data, headers=headers, method=method)
        with urllib.request.urlopen(req, timeout=30) as resp:
            text = resp.read().decode()
        return json.loads(text) if text else None

    def token(self) -> str:
        if self._token is None:
            reply = self._request("POST", "/auth/token", {"username": self.username, "password": self.password()},
                                  auth=False)
            self._token = reply["access_token"]
        return self._token

    def wait_ready(self, dag_ids: list[str], timeout_s: float = 240.0, process: AirflowProcess | None = None) -> None:
        """Until the API answers and every DAG is parsed without import errors."""
        deadline = time.monotonic() + timeout_s
        last_error = ""
        while time.monotonic() < deadline:
            if process is not None and process.process.poll() is not None:
                raise RuntimeError(f"airflow standalone exited ({process.process.returncode}); see {process.log_path}")
            try:
                errors = self._request("GET", "/api/v2/importErrors")
                if errors.get("total_entries"):
                    raise RuntimeError(f"DAG import errors: {json.dumps(errors['import_errors'])[:2000]}")
                found = {d["dag_id"] for d in self._request("GET", "/api/v2/dags?limit=100")["dags"]}
                if set(dag_ids) <= found:
                    return
                last_error = f"DAGs parsed so far: {sorted(found)}"
            except (urllib.error.URLError, ConnectionError, FileNotFoundError, KeyError, TimeoutError) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            time.sleep(2)
        raise TimeoutError(f"Airflow not ready after {timeout_s:.0f}s ({last_error})")

    def unpause(self, dag_id: str) -> None:
        self._request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        body = {"logical_date": None, "conf": conf or {}}
        return self._request("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        try:
            return self._request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}")["state"]
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    def wait_run(self, dag_id: str, run_id: str, timeout_s: float = 600.0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = self.run_state(dag_id, run_id)
            if state in {"success", "failed"}:
                return state
            time.sleep(2)
        raise TimeoutError(f"{dag_id} run {run_id} did not finish within {timeout_s:.0f}s")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        """The run's task instances as the API returns them (state, try_number, start_date, end_date...)."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances"
        return self._request("GET", path)["task_instances"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        return {t["task_id"]: t["state"] for t in self.task_instances(dag_id, run_id)}

    def wait_task(self, dag_id: str, run_id: str, task_id: str, states: set[str], timeout_s: float = 600.0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = self.task_states(dag_id, run_id).get(task_id)
            if state in states:
                return state
            time.sleep(2)
        raise TimeoutError(f"{dag_id}.{task_id} in run {run_id} did not reach {sorted(states)} in {timeout_s:.0f}s")

    def respond(self, dag_id: str, run_id: str, task_id: str, option: str) -> Any:
        """Answer a human-in-the-loop task (e.g. "Approve" / "Reject"), as a reviewer does in the UI."""
        path = (f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances/"
                f"{task_id}/-1/hitlDetails")
        return self._request("PATCH", path, {"chosen_options": [option]})

    def xcom(self, dag_id: str, run_id: str, task_id: str) -> Any:
        path = (f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances/"
                f"{task_id}/xcomEntries/return_value?deserialize=true")
        return self._request("GET", path)["value"]

