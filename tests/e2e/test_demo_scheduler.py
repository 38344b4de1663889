"""The whole continuous-training loop on the real Airflow scheduler (``airflow standalone``):
the retraining must be triggered by ct_monitoring itself and promote a new champion."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ct_operators.config import PROJECT_ROOT
from ct_operators.events import read_events

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    data_dir = tmp_path_factory.mktemp("demo") / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CT_"))}
    env.update({"CT_DATA_DIR": str(data_dir), "PYTHONPATH": str(PROJECT_ROOT / "plugins")})
    proc = subprocess.run([sys.executable, "-m", "ct_operators", "demo", "--port", str(free_port())],
                          env=env, capture_output=True, text=True, timeout=1500, cwd=PROJECT_ROOT)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-8000:]
    summary = json.loads((data_dir / "demo_summary.json").read_text())
    return data_dir, summary, output


def test_demo_completes_every_step(demo_run):
    _, summary, output = demo_run
    assert summary["completed"] is True
    assert "| 10. monitoring (expect: recovered, skip)" in output  # the summary table was printed


def test_monitoring_decisions_follow_the_story(demo_run):
    _, summary, _ = demo_run
    branches = [m["branch"] for m in summary["monitoring"]]
    assert branches == ["skip_retraining", "trigger_retraining", "skip_retraining"]
    healthy, degraded, recovered = (m["r2"] for m in summary["monitoring"])
    assert healthy >= 0.2 and degraded < 0.2 and recovered >= 0.2
    assert [m["champion_version"] for m in summary["monitoring"]] == ["1", "1", "2"]


def test_retraining_was_triggered_by_monitoring_and_promoted_v2(demo_run):
    data_dir, summary, _ = demo_run
    triggered = summary["triggered_training_run_id"]
    degraded_monitoring_run = summary["monitoring"][1]["run_id"]
    assert triggered == f"retrain__{degraded_monitoring_run}"
    retraining = [t for t in summary["trainings"] if t["run_id"] == triggered][0]
    assert retraining["promoted"] is True and retraining["model_version"] == "2"
    assert summary["final_champion_version"] == "2"
    audit = data_dir / "audit" / "events.jsonl"
    trigger_events = read_events(audit, "triggered")
    assert [e["airflow_run_id"] for e in trigger_events] == [degraded_monitoring_run]
    assert trigger_events[0]["dag_id"] == "ct_monitoring"
    promoted = read_events(audit, "promoted")
    assert [(e["airflow_run_id"], e["model_version"]) for e in promoted][-1] == (triggered, "2")


def test_serving_pointer_names_the_new_champion(demo_run):
    import sqlite3
    from contextlib import closing

    data_dir, _, _ = demo_run
    with closing(sqlite3.connect(data_dir / "feature_store.db")) as conn:
        pointer = conn.execute("SELECT config_value FROM ml_config WHERE config_key = 'ModelPath'").fetchone()[0]
        dupes = conn.execute("SELECT COUNT(*) FROM (SELECT sample_id, model_version FROM predictions "
                             "GROUP BY sample_id, model_name, model_version HAVING COUNT(*) > 1)").fetchone()[0]
    assert pointer == "models:/ct_point_regressor/2"
    assert dupes == 0
