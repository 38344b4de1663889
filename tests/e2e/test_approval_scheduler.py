"""`require_approval=true` on the real scheduler: a reviewer's Reject promotes nothing, Approve promotes."""
from __future__ import annotations

import os
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest

from ct_operators.config import load_settings
from ct_operators.events import read_events
from ct_operators.local_airflow import AirflowApi, airflow_environment, migrate, run, start_standalone

pytestmark = pytest.mark.e2e
WAITING = {"awaiting_input", "deferred"}


@pytest.fixture(scope="module")
def airflow(tmp_path_factory):
    import socket
    import sys

    data_dir = tmp_path_factory.mktemp("approval") / "data"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = load_settings({"data_dir": str(data_dir)}, environ={})
    saved = dict(os.environ)
    for key in [k for k in os.environ if k.startswith(("AIRFLOW", "CT_"))]:
        os.environ.pop(key)
    try:
        env = airflow_environment(settings, port)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    migrate(env)
    run([sys.executable, "-m", "ct_operators", "init-store"], env)
    process = start_standalone(env, data_dir / "logs" / "standalone.log", port)
    api = AirflowApi(process.base_url, Path(env["AIRFLOW_HOME"]))
    try:
        api.wait_ready(["ct_training"], process=process)
        api.unpause("ct_training")
        yield api, settings
    finally:
        process.stop()


def pointer(settings) -> str | None:
    with closing(sqlite3.connect(settings.sqlite_path)) as conn:
        row = conn.execute("SELECT config_value FROM ml_config WHERE config_key = 'ModelPath'").fetchone()
    return row[0] if row else None


def review(api: AirflowApi, option: str) -> tuple[str, dict]:
    run_id = api.trigger("ct_training", {"require_approval": True, "reason": f"approval test: {option}"})
    api.wait_task("ct_training", run_id, "approve_promotion", WAITING)
    # A reviewer answers after seconds, not milliseconds. Airflow 3.3.2 races when the answer lands before
    # the executor has reported the parked workload: the resumed try is killed and retried from execute().
    time.sleep(10)
    assert api.task_states("ct_training", run_id)["promote_model"] not in {"success", "running"}
    api.respond("ct_training", run_id, "approve_promotion", option)
    assert api.wait_run("ct_training", run_id) == "success"
    return run_id, api.task_states("ct_training", run_id)


def test_reject_promotes_nothing_then_approve_promotes(airflow):
    api, settings = airflow
    rejected_run, tasks = review(api, "Reject")
    assert tasks["promote_model"] == "skipped"
    assert pointer(settings) is None
    assert read_events(settings.audit_log, "promoted") == []
    finished = [e for e in read_events(settings.audit_log, "training_finished") if e["airflow_run_id"] == rejected_run]
    assert finished and finished[0]["status"] == "rejected_by_reviewer"
    assert [e["airflow_run_id"] for e in read_events(settings.audit_log, "rejected")] == [rejected_run]

    approved_run, tasks = review(api, "Approve")
    assert tasks["promote_model"] == "success"
    assert pointer(settings) == "models:/ct_point_regressor/2"  # v1 was registered by the rejected run
    promoted = read_events(settings.audit_log, "promoted")
    assert [(e["airflow_run_id"], e["model_version"]) for e in promoted] == [(approved_run, "2")]
