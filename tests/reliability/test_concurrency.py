"""Priority 4: concurrency on one SQLite feature-store file, with the champion served by the real MLflow server.

* the drift simulator inserting from another process while predictions and monitoring run in threads of
  this one: no lost sample, no duplicate prediction, no "database is locked";
* two ``ct_monitoring`` evaluations in two processes, released at the same instant, both seeing the same
  drop: exactly one retraining is claimed.
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from contextlib import closing
from pathlib import Path

import pytest

from ct_operators import registry
from ct_operators.config import PROJECT_ROOT
from ct_operators.events import RunIds, read_events
from ct_operators.monitoring import evaluate_champion
from ct_operators.serving import PredictionService
from ct_operators.simulate import DriftSpec, insert_simulated

from reliability_support import Champion, new_store

pytestmark = pytest.mark.e2e

WORKER = Path(__file__).with_name("reliability_worker.py")
BATCHES, POINTS = 25, 20


def worker_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CT_"))}
    env["PYTHONPATH"] = str(PROJECT_ROOT / "plugins")
    return env


def start_worker(role: str, payload: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKER), role, json.dumps(payload)], env=worker_env(),
                            cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def result_of(proc: subprocess.Popen, timeout: int = 900) -> tuple[dict, str]:
    out, err = proc.communicate(timeout=timeout)
    lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    assert lines, f"worker printed no result (exit {proc.returncode}):\n{out[-3000:]}\n{err[-3000:]}"
    result = json.loads(lines[-1][len("RESULT "):])
    assert result["ok"], result.get("traceback") or result
    return result, out + err


def test_simulator_predictions_and_monitoring_in_parallel_lose_nothing(champ: Champion, tmp_path: Path) -> None:
    settings = champ.settings
    store = new_store(tmp_path / "fs.db")  # seed data, no serving pointer yet: the first run repairs it
    go = tmp_path / "go"
    simulator = start_worker("simulate", {"data_dir": str(tmp_path / "sim"), "db": str(store.path), "go": str(go),
                                          "batches": BATCHES, "points": POINTS})
    errors: list[str] = []
    written: list[int] = []
    reports: list = []
    done = threading.Event()

    def predict() -> None:
        try:
            while True:
                last = done.is_set()
                written.append(PredictionService(settings, store).score_unscored(batch_size=7).written)
                if last:
                    return
        except Exception as exc:  # reported below
            errors.append(f"predict: {type(exc).__name__}: {exc}")

    def monitor() -> None:
        try:
            for i in range(3):
                reports.append(evaluate_champion(settings, store, RunIds("ct_monitoring", f"par__{uuid.uuid4().hex[:8]}",
                                                                         "evaluate_champion")))
        except Exception as exc:
            errors.append(f"monitor: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=predict), threading.Thread(target=monitor)]
    go.touch()
    for t in threads:
        t.start()
    sim_result, sim_output = result_of(simulator)
    done.set()
    for t in threads:
        t.join(timeout=900)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert "database is locked" not in sim_output and "locked" not in " ".join(errors)
    assert len(reports) == 3 and all(r.status in {"evaluated", "insufficient_data"} for r in reports)

    champion = registry.version_by_alias(champ.client(), settings.registered_model_name, settings.champion_alias)
    inserted = sum(sim_result["inserted"])
    assert inserted == BATCHES * POINTS
    with closing(sqlite3.connect(store.path)) as conn:
        samples = conn.execute("SELECT COUNT(*) FROM point_samples").fetchone()[0]
        labels = dict(conn.execute("SELECT label, COUNT(*) FROM point_samples GROUP BY label"))
        per_sample = conn.execute(
            "SELECT s.id, COUNT(p.id) FROM point_samples s LEFT JOIN predictions p ON p.sample_id = s.id "
            "AND p.model_name = ? AND p.model_version = ? GROUP BY s.id", (settings.registered_model_name,
                                                                             champion.version)).fetchall()
        predictions = conn.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
    assert samples == 11 + inserted  # no lost sample
    assert all(labels[f"batch-{i}"] == POINTS for i in range(BATCHES))
    assert {n for _, n in per_sample} == {1}  # every sample scored exactly once by the champion
    assert predictions == samples == sum(written)  # no duplicate, and every reported write is a row
    assert store.get_serving_pointer() == f"models:/{settings.registered_model_name}/{champion.version}"


def test_two_monitors_seeing_a_drop_at_once_trigger_one_retraining(champ: Champion, tmp_path: Path) -> None:
    settings = champ.settings
    store = new_store(tmp_path / "fs.db")
    insert_simulated(settings, store, DriftSpec(points=40, slope=-3.0, offset=450.0, noise=2.0, seed=12, label="drifted"))
    PredictionService(settings, store).score_unscored()
    go = tmp_path / "go"
    payload = {"settings": {"data_dir": str(settings.data_dir), "mlflow_tracking_uri": settings.mlflow_tracking_uri,
                            "registered_model_name": settings.registered_model_name,
                            "training_experiment": settings.training_experiment,
                            "monitoring_experiment": settings.monitoring_experiment},
               "db": str(store.path), "go": str(go)}
    run_ids = [f"scheduled__twin{i}_{uuid.uuid4().hex[:6]}" for i in (1, 2)]
    procs = [start_worker("monitor", {**payload, "run_id": rid}) for rid in run_ids]
    deadline = time.monotonic() + 600
    while not all(Path(f"{go}.{rid}.ready").exists() for rid in run_ids):  # both imported and connected
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "a monitor did not get ready"
        time.sleep(0.05)
    go.touch()  # released at the same instant
    reports = [result_of(p)[0] for p in procs]
    actions = sorted(r["action"] for r in reports)
    assert actions == ["skip", "trigger"], [(r["action"], r["reason"]) for r in reports]
    assert all(r["metrics"]["r2"] < settings.r2_threshold for r in reports)  # both saw the drop
    refused = next(r for r in reports if r["action"] == "skip")
    assert "not triggering again" in refused["reason"]
    with closing(sqlite3.connect(store.path)) as conn:
        triggers = conn.execute("SELECT monitoring_run_id FROM retrain_triggers").fetchall()
    winner = next(rid for rid, r in zip(run_ids, reports) if r["action"] == "trigger")
    assert triggers == [(winner,)]
    events = [e for e in read_events(settings.audit_log, "triggered") if e["airflow_run_id"] in run_ids]
    assert [e["airflow_run_id"] for e in events] == [winner]
