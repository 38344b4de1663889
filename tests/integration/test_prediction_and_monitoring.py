"""Scoring and monitoring a champion trained by the real ct_training steps, on real SQLite and MLflow stores.

Every test has its own feature store (so its retraining bookkeeping is its own) and its own Airflow-like
run ids; all share the module's MLflow store and the champion trained into it.
"""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import threading
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from ct_operators.config import PROJECT_ROOT
from ct_operators.events import RunIds, read_events, utcnow
from ct_operators.monitoring import evaluate_champion
from ct_operators.serving import PredictionService
from ct_operators.simulate import SEED_LIKE, DriftSpec, insert_simulated
from ct_operators.store.sqlite import SqliteFeatureStore
from ct_operators.store.types import TimeWindow

if TYPE_CHECKING:  # the fixture's type, from tests/integration/conftest.py
    from conftest import TrainedChampion

SEED_CSV = PROJECT_ROOT / "include" / "data" / "point_samples.csv"

HEALTHY = DriftSpec(points=30, seed=11, label="healthy", **SEED_LIKE)
DRIFTED = DriftSpec(points=40, slope=-3.0, offset=450.0, noise=2.0, seed=12, label="drifted")


def run_ids() -> RunIds:
    return RunIds(dag_id="ct_monitoring", run_id=f"scheduled__{uuid.uuid4().hex[:12]}", task_id="evaluate_champion")


def add_scored(champ: TrainedChampion, store: SqliteFeatureStore, spec: DriftSpec) -> int:
    insert_simulated(champ.settings, store, spec)
    return PredictionService(champ.settings, store).score_unscored().written


def events_of(champ: TrainedChampion, event: str, ids: RunIds) -> list[dict]:
    return [e for e in read_events(champ.settings.audit_log, event) if e.get("airflow_run_id") == ids.run_id]


def monitoring_run(champ: TrainedChampion, ids: RunIds):
    client = champ.client()
    exp = client.get_experiment_by_name(champ.settings.monitoring_experiment)
    assert exp is not None, "experiment ct_monitoring was not created"
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`airflow.run_id` = '{ids.run_id}'")
    assert len(runs) == 1, f"expected one monitoring run for {ids.run_id}, found {len(runs)}"
    return runs[0]


def artifacts(champ: TrainedChampion, run_id: str, path: str | None = None) -> set[str]:
    out: set[str] = set()
    for item in champ.client().list_artifacts(run_id, path):
        out |= artifacts(champ, run_id, item.path) if item.is_dir else {item.path}
    return out


def triggers(store: SqliteFeatureStore) -> list[tuple]:
    with store.transaction() as cur:
        cur.execute("SELECT triggered_at, reason, window_start, monitoring_run_id FROM retrain_triggers ORDER BY id")
        return cur.fetchall()


# -- prediction with the trained champion -----------------------------------------------------

def test_champion_scores_the_seed_data_like_the_registered_model(trained_champion: TrainedChampion,
                                                                 fresh_store: SqliteFeatureStore) -> None:
    import mlflow

    champ = trained_champion
    fresh_store.load_seed_csv(SEED_CSV)
    summary = PredictionService(champ.settings, fresh_store).score_unscored(batch_size=4)
    assert summary.written == fresh_store.count_samples() == 11
    assert summary.batches == 3
    assert fresh_store.get_serving_pointer() == champ.model_uri  # repaired from the alias for this store
    frame = fresh_store.fetch_samples()
    expected = mlflow.pyfunc.load_model(champ.model_uri).predict(frame[["x"]])
    with fresh_store.transaction() as cur:
        cur.execute("SELECT sample_id, predicted, model_version, mlflow_run_id FROM predictions ORDER BY sample_id")
        rows = cur.fetchall()
    assert [r[0] for r in rows] == frame["id"].tolist()
    assert np.allclose([r[1] for r in rows], np.asarray(expected, dtype="float64"))
    assert {(r[2], r[3]) for r in rows} == {(champ.version, champ.mlflow_run_id)}


# -- monitoring decisions ---------------------------------------------------------------------

def test_no_champion_skips_and_logs_a_run(trained_champion: TrainedChampion, fresh_store: SqliteFeatureStore) -> None:
    champ = trained_champion
    settings = dataclasses.replace(champ.settings, registered_model_name="never_trained")
    ids = run_ids()
    report = evaluate_champion(settings, fresh_store, ids)
    assert (report.status, report.action) == ("no_champion", "skip")
    assert "no champion" in report.reason
    assert report.champion_version is None and report.trigger_conf == {}
    run = monitoring_run(champ, ids)
    assert run.info.run_id == report.mlflow_run_id
    assert run.data.tags["ct.status"] == "no_champion" and run.data.tags["ct.action"] == "skip"
    assert run.data.metrics["sample_count"] == 0
    assert "plots/predictions_over_time.png" not in artifacts(champ, run.info.run_id)
    assert [e["status"] for e in events_of(champ, "monitored", ids)] == ["no_champion"]
    assert len(events_of(champ, "skipped", ids)) == 1
    assert triggers(fresh_store) == []


def test_no_new_labelled_samples_is_insufficient(trained_champion: TrainedChampion,
                                                 fresh_store: SqliteFeatureStore) -> None:
    champ = trained_champion
    fresh_store.load_seed_csv(SEED_CSV)  # labelled, but from before the promotion
    insert_simulated(champ.settings, fresh_store, DriftSpec(points=3, seed=1))
    PredictionService(champ.settings, fresh_store).score_unscored()
    with fresh_store.transaction() as cur:  # after the promotion but unlabelled: not counted either
        cur.execute("UPDATE point_samples SET y = NULL WHERE label = 'simulated'")
    ids = run_ids()
    report = evaluate_champion(champ.settings, fresh_store, ids)
    assert (report.status, report.action, report.samples) == ("insufficient_data", "skip", 0)
    assert report.champion_version == champ.version
    assert datetime.fromisoformat(report.window["start"]) == champ.promoted_at
    assert f"minimum {champ.settings.monitoring_min_samples}" in report.reason
    assert report.metrics == {}
    assert monitoring_run(champ, ids).data.tags["ct.status"] == "insufficient_data"
    assert triggers(fresh_store) == []


def test_fewer_than_the_minimum_samples_skips(trained_champion: TrainedChampion,
                                              fresh_store: SqliteFeatureStore) -> None:
    champ = trained_champion
    assert add_scored(champ, fresh_store, dataclasses.replace(DRIFTED, points=3)) == 3
    ids = run_ids()
    report = evaluate_champion(champ.settings, fresh_store, ids)
    assert (report.status, report.action, report.samples) == ("insufficient_data", "skip", 3)
    assert "minimum 10" in report.reason and "3 labelled sample(s)" in report.reason
    assert triggers(fresh_store) == []
    # the minimum is a setting: with 3 required the same data is evaluated (and is degraded)
    lower = dataclasses.replace(champ.settings, monitoring_min_samples=3)
    report = evaluate_champion(lower, fresh_store, run_ids())
    assert (report.status, report.action) == ("evaluated", "trigger")


def test_healthy_champion_is_not_retrained(trained_champion: TrainedChampion, fresh_store: SqliteFeatureStore) -> None:
    champ = trained_champion
    assert add_scored(champ, fresh_store, HEALTHY) == HEALTHY.points
    ids = run_ids()
    report = evaluate_champion(champ.settings, fresh_store, ids)
    assert (report.status, report.action, report.samples) == ("evaluated", "skip", HEALTHY.points)
    assert report.metrics["r2"] >= champ.settings.r2_threshold
    assert "healthy" in report.reason
    assert report.trigger_conf == {}
    assert 0.0 <= report.drift["ks_statistic"] <= 1.0
    run = monitoring_run(champ, ids)
    for name in ("r2", "mae", "rmse", "sample_count", "ks_statistic", "ks_pvalue"):
        assert name in run.data.metrics, f"{name} missing from {sorted(run.data.metrics)}"
    assert run.data.metrics["sample_count"] == HEALTHY.points
    assert run.data.metrics["r2"] == pytest.approx(report.metrics["r2"])
    assert run.data.tags["ct.action"] == "skip"
    assert "plots/predictions_over_time.png" in artifacts(champ, run.info.run_id)
    assert len(events_of(champ, "skipped", ids)) == 1 and events_of(champ, "triggered", ids) == []
    assert triggers(fresh_store) == []


def test_degraded_champion_triggers_retraining(trained_champion: TrainedChampion,
                                               fresh_store: SqliteFeatureStore) -> None:
    champ = trained_champion
    add_scored(champ, fresh_store, HEALTHY)
    add_scored(champ, fresh_store, DRIFTED)
    ids = run_ids()
    report = evaluate_champion(champ.settings, fresh_store, ids)
    assert (report.status, report.action) == ("evaluated", "trigger"), report.reason
    assert report.samples == HEALTHY.points + DRIFTED.points
    assert report.metrics["r2"] < champ.settings.r2_threshold
    assert report.drift["ks_statistic"] > 0
    conf = report.trigger_conf
    assert conf["reason"] == report.reason and "R²" in conf["reason"] and f"v{champ.version}" in conf["reason"]
    assert datetime.fromisoformat(conf["window_start"]) == champ.promoted_at
    assert conf["triggered_by"] == f"ct_monitoring/{ids.run_id}"
    json.dumps(conf)  # goes to TriggerDagRunOperator as the child's conf

    run = monitoring_run(champ, ids)
    assert run.info.run_id == report.mlflow_run_id
    for name in ("r2", "mae", "rmse", "sample_count"):
        assert name in run.data.metrics
    assert run.data.metrics["sample_count"] == report.samples
    assert run.data.tags["ct.action"] == "trigger"
    assert "plots/predictions_over_time.png" in artifacts(champ, run.info.run_id)

    monitored = events_of(champ, "monitored", ids)
    triggered = events_of(champ, "triggered", ids)
    assert len(monitored) == 1 and len(triggered) == 1 and events_of(champ, "skipped", ids) == []
    assert monitored[0]["mlflow_run_id"] == triggered[0]["mlflow_run_id"] == report.mlflow_run_id
    assert monitored[0]["dag_id"] == "ct_monitoring" and monitored[0]["task_id"] == "evaluate_champion"
    assert triggered[0]["trigger_conf"] == conf
    recorded = triggers(fresh_store)
    assert len(recorded) == 1 and recorded[0][3] == ids.run_id and recorded[0][1] == report.reason


def test_retraining_guards(trained_champion: TrainedChampion, fresh_store: SqliteFeatureStore) -> None:
    champ = trained_champion
    add_scored(champ, fresh_store, DRIFTED)
    now = utcnow()
    first = evaluate_champion(champ.settings, fresh_store, run_ids(), now=now)
    assert first.action == "trigger", first.reason

    # right after: the cooldown holds
    ids = run_ids()
    again = evaluate_champion(champ.settings, fresh_store, ids, now=now + timedelta(minutes=1))
    assert (again.status, again.action) == ("evaluated", "skip")
    assert "cooldown" in again.reason
    assert again.metrics["r2"] == pytest.approx(first.metrics["r2"])  # still measured and logged
    assert monitoring_run(champ, ids).data.tags["ct.action"] == "skip"
    assert "cooldown" in events_of(champ, "skipped", ids)[0]["reason"]

    # after the cooldown, but a training run is active
    later = now + timedelta(minutes=champ.settings.retrain_cooldown_minutes + 5)
    fresh_store.start_training_run("retrain__scheduled__abc", later - timedelta(minutes=2))
    busy = evaluate_champion(champ.settings, fresh_store, run_ids(), now=later)
    assert busy.action == "skip"
    assert "retrain__scheduled__abc" in busy.reason

    # the run finished: trigger again
    fresh_store.finish_training_run("retrain__scheduled__abc", "promoted", later - timedelta(minutes=1))
    ids = run_ids()
    retrigger = evaluate_champion(champ.settings, fresh_store, ids, now=later)
    assert retrigger.action == "trigger", retrigger.reason
    assert [t[3] for t in triggers(fresh_store)] == [first.trigger_conf["triggered_by"].split("/", 1)[1], ids.run_id]

    # with no cooldown, a degraded champion triggers on every evaluation
    no_cooldown = dataclasses.replace(champ.settings, retrain_cooldown_minutes=0)
    assert evaluate_champion(no_cooldown, fresh_store, run_ids(), now=later + timedelta(seconds=1)).action == "trigger"
    assert len(triggers(fresh_store)) == 3


def test_an_abandoned_training_run_does_not_block_forever(trained_champion: TrainedChampion,
                                                          fresh_store: SqliteFeatureStore) -> None:
    champ = trained_champion
    add_scored(champ, fresh_store, DRIFTED)
    now = utcnow()
    fresh_store.start_training_run("crashed_run", now - timedelta(minutes=champ.settings.training_lease_minutes + 1))
    report = evaluate_champion(champ.settings, fresh_store, run_ids(), now=now)
    assert report.action == "trigger", report.reason


def test_same_airflow_run_reuses_its_mlflow_run(trained_champion: TrainedChampion,
                                                fresh_store: SqliteFeatureStore) -> None:
    champ = trained_champion
    add_scored(champ, fresh_store, HEALTHY)
    ids = run_ids()
    first = evaluate_champion(champ.settings, fresh_store, ids)
    retried = evaluate_champion(champ.settings, fresh_store, ids)  # a task retry
    assert first.mlflow_run_id == retried.mlflow_run_id
    assert monitoring_run(champ, ids).info.run_id == first.mlflow_run_id


# -- concurrent claims ------------------------------------------------------------------------

def _claim(path: Path, now: datetime, tag: str) -> str | None:
    return SqliteFeatureStore(path).claim_retraining(
        now=now, cooldown=timedelta(minutes=60), lease=timedelta(minutes=120), reason=f"claim {tag}",
        window=TimeWindow(start=now - timedelta(hours=1), end=now), monitoring_run_id=tag)


def test_concurrent_claims_in_threads_grant_exactly_one(fresh_store: SqliteFeatureStore) -> None:
    now = utcnow()
    n = 8
    barrier = threading.Barrier(n)
    results: dict[int, str | None] = {}
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            barrier.wait()
            results[i] = _claim(fresh_store.path, now, f"thread-{i}")
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    granted = [i for i, refused in results.items() if refused is None]
    assert len(results) == n and len(granted) == 1, results
    assert all("cooldown" in r for r in results.values() if r is not None)
    assert [t[3] for t in triggers(fresh_store)] == [f"thread-{granted[0]}"]


CLAIM_SCRIPT = """
import json, sys, time
from datetime import datetime
from pathlib import Path
sys.path.insert(0, sys.argv[4])
sys.path.insert(0, sys.argv[5])
from test_prediction_and_monitoring import _claim
go = Path(sys.argv[2])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.005)
print(json.dumps({"refused": _claim(Path(sys.argv[1]), datetime.fromisoformat(sys.argv[3]), go.name + sys.argv[6])}),
      flush=True)
"""


def test_concurrent_claims_in_processes_grant_exactly_one(fresh_store: SqliteFeatureStore, tmp_path: Path) -> None:
    now = utcnow()
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", CLAIM_SCRIPT, str(fresh_store.path), str(go), now.isoformat(),
                               str(Path(__file__).parent), str(PROJECT_ROOT / "plugins"), f"-{i}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(4)]
    try:
        for p in procs:  # all imported and waiting before any may claim
            assert p.stdout.readline().strip() == "ready", p.stderr.read()
        go.touch()
        outputs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outputs]
    refused = [json.loads(out.strip().splitlines()[-1])["refused"] for out, _ in outputs]
    assert refused.count(None) == 1, refused
    assert len(triggers(fresh_store)) == 1


def test_retried_monitoring_task_keeps_its_own_claim(trained_champion: TrainedChampion,
                                                     fresh_store: SqliteFeatureStore) -> None:
    champ = trained_champion
    add_scored(champ, fresh_store, DRIFTED)
    ids, now = run_ids(), utcnow()
    # the first try of the task got as far as the claim (same store call, same Airflow run id), then died
    first_try = fresh_store.claim_retraining(
        now=now, cooldown=timedelta(minutes=champ.settings.retrain_cooldown_minutes),
        lease=timedelta(minutes=champ.settings.training_lease_minutes), reason="first try",
        window=TimeWindow(start=champ.promoted_at, end=now), monitoring_run_id=ids.run_id)
    assert first_try is None
    retry = evaluate_champion(champ.settings, fresh_store, ids, now=now + timedelta(seconds=30))
    assert retry.action == "trigger", retry.reason
