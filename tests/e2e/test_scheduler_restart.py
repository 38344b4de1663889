"""Airflow killed (kill -9, the whole standalone group) while ct_training runs, then started again on the
same stores: the run ends cleanly, with one registered version and at most one champion change."""
from __future__ import annotations

import os
import signal
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest

from ct_operators.events import read_events
from ct_operators.local_airflow import AirflowApi, start_standalone

pytestmark = pytest.mark.e2e


def test_killed_and_restarted_airflow_ends_the_run_cleanly(tmp_path, standalone_environment):
    data_dir = tmp_path / "data"
    # the killed scheduler's tasks are adopted or reset every orphaned_tasks_check_interval (default 300 s)
    # once its job missed heartbeats for scheduler_health_check_threshold (30 s): check every 15 s here
    settings, env = standalone_environment(data_dir, AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT="30",
                                           AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL="15")
    port = int(env["AIRFLOW__API__PORT"])

    first = start_standalone(env, data_dir / "logs" / "standalone-1.log", port)
    try:
        api = AirflowApi(first.base_url, Path(env["AIRFLOW_HOME"]))
        api.wait_ready(["ct_training"], process=first)
        api.unpause("ct_training")
        run_id = api.trigger("ct_training", {"reason": "restart test"})
        api.wait_task("ct_training", run_id, "train_model", {"running", "success"}, timeout_s=600)
    finally:
        os.killpg(first.process.pid, signal.SIGKILL)  # no graceful shutdown: a crash
        first.process.wait(timeout=30)
    time.sleep(2)

    second = start_standalone(env, data_dir / "logs" / "standalone-2.log", port)
    try:
        api = AirflowApi(second.base_url, Path(env["AIRFLOW_HOME"]))
        api.wait_ready(["ct_training"], process=second)
        state = api.wait_run("ct_training", run_id, timeout_s=900)
    finally:
        second.stop()

    assert state in {"success", "failed"}
    from ct_operators import registry

    client = registry.connect(settings)
    versions = client.search_model_versions(f"name = '{settings.registered_model_name}'")
    assert len(versions) == 1, [v.version for v in versions]  # the retried train reused its version
    promoted = read_events(settings.audit_log, "promoted")
    assert len(promoted) <= 1
    with closing(sqlite3.connect(settings.sqlite_path)) as conn:
        pointer = conn.execute("SELECT config_value FROM ml_config WHERE config_key = 'ModelPath'").fetchone()
    champion = registry.version_by_alias(client, settings.registered_model_name, settings.champion_alias)
    if state == "success":
        assert champion is not None and pointer[0] == champion.uri
    else:
        assert pointer is None or champion is None or pointer[0] == champion.uri
