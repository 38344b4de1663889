"""ct_simulate_drift inserting while ct_prediction and ct_monitoring run at the same time, on the real
scheduler (LocalExecutor, parallelism 4) and the SQLite feature store: every run succeeds on its first
try, no sample is lost, no prediction is duplicated, and no task ever logs "database is locked".

The feature-store connection carries a password, as a deployed one does: after all four DAGs ran, no
byte of any file Airflow, MLflow or the pipeline wrote (task logs, scheduler log, both databases, MLflow
artifacts, audit log, model cache) contains it."""
from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from datetime import datetime
from pathlib import Path

import pytest

from ct_operators.config import load_settings
from ct_operators.events import read_events
from ct_operators.local_airflow import AirflowApi, start_standalone
from ct_operators.store.types import from_db_ts

pytestmark = pytest.mark.e2e

DAG_IDS = ["ct_training", "ct_simulate_drift", "ct_prediction", "ct_monitoring"]
PARALLELISM = 4
SIMULATOR_RUNS = 4
POINTS_PER_RUN = 50_000
BACKLOG_POINTS = 150_000  # unscored when the burst starts: the first prediction run is still scoring during it
SMALL_BATCH = 200  # many short write transactions, interleaved with the simulator's big ones
SEED_LIKE = {"slope": 1.2, "offset": 9.0, "noise": 4.0}  # keeps the champion's R² high: monitoring skips
CONN_PASSWORD = "p4ss-SECRET-in-parallel-run"


def _parse_ts(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _overlap_seconds(a: dict, b: dict) -> float:
    """How long two task instances were running at the same time (0 when they were not)."""
    start = max(_parse_ts(a["start_date"]), _parse_ts(b["start_date"]))
    end = min(_parse_ts(a["end_date"]), _parse_ts(b["end_date"]))
    return max(0.0, (end - start).total_seconds())


def _duration(ti: dict) -> float:
    return (_parse_ts(ti["end_date"]) - _parse_ts(ti["start_date"])).total_seconds()


def _peak_concurrency(task_instances: list[dict]) -> int:
    """The most task instances that were running at one moment."""
    events = sorted([(_parse_ts(t["start_date"]), 1) for t in task_instances]
                    + [(_parse_ts(t["end_date"]), -1) for t in task_instances], key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def _read_only(db: Path) -> sqlite3.Connection:
    """The test's own look at the store: read-only, so it never takes a lock nor checkpoints the WAL."""
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True)


def _wait_until_scoring(api: AirflowApi, db: Path, run_id: str, timeout_s: float = 600.0) -> None:
    """Until the prediction run has written its first batch."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with closing(_read_only(db)) as conn:
            if conn.execute("SELECT EXISTS (SELECT 1 FROM predictions)").fetchone()[0]:
                return
        if api.run_state("ct_prediction", run_id) in {"success", "failed"}:
            raise AssertionError(f"ct_prediction {run_id} ended before it wrote a prediction")
        time.sleep(0.5)
    raise TimeoutError(f"ct_prediction {run_id} wrote no prediction within {timeout_s:.0f}s")


def _files_mentioning(root: Path, needle: str) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and needle in path.read_text(encoding="utf-8", errors="replace").lower():
            hits.append(str(path))
    return hits


def test_simulator_prediction_and_monitoring_in_parallel_lose_and_duplicate_nothing(tmp_path, standalone_environment):
    data_dir = tmp_path / "data"
    conn_var = "AIRFLOW_CONN_" + load_settings({}, environ={}).feature_store_conn_id.upper()
    settings, env = standalone_environment(
        data_dir, AIRFLOW__CORE__PARALLELISM=str(PARALLELISM),
        CT_PREDICTION_SCHEDULE="", CT_MONITORING_SCHEDULE="",  # only the runs this test triggers
        **{conn_var: json.dumps({"conn_type": "sqlite", "host": str(data_dir / "feature_store.db"),
                                 "password": CONN_PASSWORD})})
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor" and int(env["AIRFLOW__CORE__PARALLELISM"]) > 1
    assert settings.sqlite_path == data_dir / "feature_store.db"
    port = int(env["AIRFLOW__API__PORT"])
    airflow_home = Path(env["AIRFLOW_HOME"])
    with closing(sqlite3.connect(settings.sqlite_path)) as conn:
        samples_before = conn.execute("SELECT COUNT(*) FROM point_samples").fetchone()[0]

    standalone_log = data_dir / "logs" / "standalone.log"
    airflow = start_standalone(env, standalone_log, port)
    try:
        api = AirflowApi(airflow.base_url, airflow_home)
        api.wait_ready(DAG_IDS, process=airflow)
        for dag_id in DAG_IDS:
            api.unpause(dag_id)
        training_run = api.trigger("ct_training", {"reason": "parallel dags test"})
        assert api.wait_run("ct_training", training_run, timeout_s=900) == "success"
        champion_version = str(api.xcom("ct_training", training_run, "promote_model")["model_version"])

        backlog_conf = {"points": BACKLOG_POINTS, **SEED_LIKE, "seed": 99, "label": "backlog"}
        backlog_run = api.trigger("ct_simulate_drift", backlog_conf)
        assert api.wait_run("ct_simulate_drift", backlog_run, timeout_s=600) == "success"

        # The burst. The first prediction run starts alone on the backlog; once it writes, monitoring and the
        # simulators are triggered back to back, so the simulators insert while it scores batch after batch.
        # The second prediction/monitoring runs queue behind the first ones (max_active_runs=1).
        burst_started = time.monotonic()
        burst: list[tuple[str, str]] = [("ct_prediction", api.trigger("ct_prediction", {"batch_size": SMALL_BATCH}))]
        _wait_until_scoring(api, settings.sqlite_path, burst[0][1])
        burst.append(("ct_monitoring", api.trigger("ct_monitoring")))
        labels = [f"par-{i}" for i in range(SIMULATOR_RUNS)]
        for i, label in enumerate(labels):
            conf = {"points": POINTS_PER_RUN, **SEED_LIKE, "seed": 100 + i, "label": label}
            burst.append(("ct_simulate_drift", api.trigger("ct_simulate_drift", conf)))
        burst.append(("ct_prediction", api.trigger("ct_prediction", {"batch_size": SMALL_BATCH})))
        burst.append(("ct_monitoring", api.trigger("ct_monitoring")))
        burst_states = {run_id: api.wait_run(dag_id, run_id, timeout_s=1500) for dag_id, run_id in burst}
        burst_seconds = time.monotonic() - burst_started

        final_run = api.trigger("ct_prediction", {"batch_size": SMALL_BATCH})
        final_state = api.wait_run("ct_prediction", final_run, timeout_s=900)

        runs = [("ct_simulate_drift", backlog_run), *burst, ("ct_prediction", final_run)]
        instances = {run_id: api.task_instances(dag_id, run_id) for dag_id, run_id in runs}
        # every run succeeded (checked before reading the runs' XComs)
        states = {**burst_states, final_run: final_state, backlog_run: "success"}
        not_successful = {r: api.task_states(d, r) for d, r in runs if states[r] != "success"}
        assert not not_successful, not_successful
        written = {run_id: api.xcom(dag_id, run_id, "score_unscored_samples")["written"]
                  for dag_id, run_id in runs if dag_id == "ct_prediction"}
        branches = {run_id: {t["task_id"]: t["state"] for t in instances[run_id]}
                    for dag_id, run_id in burst if dag_id == "ct_monitoring"}
        reports = [api.xcom(dag_id, run_id, "evaluate_champion")
                   for dag_id, run_id in burst if dag_id == "ct_monitoring"]
    finally:
        airflow.stop()

    # no task needed a second try (a retry would hide a "database is locked" failure)
    tries = {(run_id, t["task_id"]): (t["state"], t["try_number"]) for run_id, tis in instances.items() for t in tis}
    ran = {key: try_number for key, (state, try_number) in tries.items() if state == "success"}
    assert ran and set(ran.values()) == {1}, tries
    assert all(try_number <= 1 for state, try_number in tries.values() if state == "skipped"), tries
    assert not list((airflow_home / "logs").rglob("attempt=2*")), "a task was retried"
    for monitoring_tasks in branches.values():  # seed-like points: the champion stays healthy
        assert monitoring_tasks["skip_retraining"] == "success" and monitoring_tasks["trigger_retraining"] == "skipped"

    # no lost sample, no duplicate prediction, every scorable sample scored once by the champion
    with closing(sqlite3.connect(settings.sqlite_path)) as conn:
        per_label = dict(conn.execute(
            "SELECT label, COUNT(*) FROM point_samples WHERE label = 'backlog' OR label LIKE 'par-%' "
            "GROUP BY label").fetchall())
        samples_after = conn.execute("SELECT COUNT(*) FROM point_samples").fetchone()[0]
        duplicates = conn.execute(
            "SELECT model_name, model_version, sample_id, COUNT(*) FROM predictions "
            "GROUP BY model_name, model_version, sample_id HAVING COUNT(*) > 1 LIMIT 5").fetchall()
        scorable = conn.execute(
            "SELECT COUNT(*) FROM point_samples WHERE typeof(x) IN ('real', 'integer')").fetchone()[0]
        unscored = conn.execute(
            "SELECT COUNT(*) FROM point_samples s WHERE typeof(s.x) IN ('real', 'integer') AND NOT EXISTS ("
            " SELECT 1 FROM predictions p WHERE p.sample_id = s.id AND p.model_name = ? AND p.model_version = ?)",
            (settings.registered_model_name, champion_version)).fetchone()[0]
        insert_started = dict(conn.execute(  # event_ts: taken before the points are drawn and inserted
            "SELECT label, MIN(event_ts) FROM point_samples WHERE label LIKE 'par-%' GROUP BY label").fetchall())
        prediction_batches = [from_db_ts(ts) for (ts,) in conn.execute(
            "SELECT DISTINCT predicted_at FROM predictions WHERE model_name = ? AND model_version = ?",
            (settings.registered_model_name, champion_version))]
        champion_predictions = conn.execute(
            "SELECT COUNT(*) FROM predictions WHERE model_name = ? AND model_version = ?",
            (settings.registered_model_name, champion_version)).fetchone()[0]
    assert per_label == {"backlog": BACKLOG_POINTS, **{label: POINTS_PER_RUN for label in labels}}
    assert samples_after == samples_before + BACKLOG_POINTS + SIMULATOR_RUNS * POINTS_PER_RUN
    assert duplicates == []
    assert unscored == 0 and champion_predictions == scorable
    assert sum(written.values()) == champion_predictions  # each run wrote only what no other run had written

    # no "database is locked" in any task log nor in the scheduler's (standalone) log
    assert _files_mentioning(airflow_home / "logs", "database is locked") == []
    scheduler_output = standalone_log.read_text(encoding="utf-8", errors="replace")
    assert "database is locked" not in scheduler_output.lower()
    assert "Loaded executor: :LocalExecutor:" in scheduler_output

    # the work really overlapped. Writes: a prediction batch was scored (its predicted_at is taken just before
    # its write) between a simulator's start of insert and the commit it audited. Tasks: a simulator task was
    # running while the first prediction task and while an evaluate_champion task ran (Airflow's start/end).
    insert_committed = {e["spec"]["label"]: datetime.fromisoformat(e["ts"])
                        for e in read_events(settings.audit_log, "simulated") if e["spec"]["label"] in labels}
    insert_windows = [(from_db_ts(insert_started[label]), insert_committed[label]) for label in labels]
    batches_during_inserts = sum(any(start <= ts <= end for start, end in insert_windows)
                                 for ts in prediction_batches)

    def tasks_of(dag_id: str, task_id: str, run_ids: list[str]) -> list[dict]:
        return [t for r in run_ids for t in instances[r] if t["task_id"] == task_id and t["dag_id"] == dag_id]

    burst_ids = {dag_id: [r for d, r in burst if d == dag_id] for dag_id, _ in burst}
    simulator_tasks = tasks_of("ct_simulate_drift", "insert_simulated_points", burst_ids["ct_simulate_drift"])
    first_prediction = tasks_of("ct_prediction", "score_unscored_samples", burst_ids["ct_prediction"][:1])[0]
    evaluations = tasks_of("ct_monitoring", "evaluate_champion", burst_ids["ct_monitoring"])
    with_prediction = max(_overlap_seconds(s, first_prediction) for s in simulator_tasks)
    with_monitoring = max(_overlap_seconds(s, e) for s in simulator_tasks for e in evaluations)
    peak_running = _peak_concurrency([t for tis in instances.values() for t in tis if t["duration"]])

    print(f"\nparallel DAGs: parallelism={PARALLELISM}, burst of {len(burst)} runs in {burst_seconds:.0f}s")
    print(f"  samples: {samples_before} before, {samples_after} after; per label {per_label}")
    print(f"  predictions by champion v{champion_version}: {champion_predictions} (scorable samples {scorable}), "
          f"duplicates {len(duplicates)}; written per prediction run {list(written.values())}")
    print(f"  tries: {sorted(set(ran.values()))} over {len(ran)} task instances that ran; "
          f"at most {peak_running} running at once")
    print(f"  monitoring (status, samples, R²): "
          f"{[(r['status'], r['samples'], round(r['metrics'].get('r2', float('nan')), 4)) for r in reports]}")
    print(f"  simulator tasks: {[round(_duration(s), 1) for s in simulator_tasks]} s; first prediction "
          f"{_duration(first_prediction):.1f} s; evaluate_champion {[round(_duration(e), 1) for e in evaluations]} s")
    print(f"  simulator inserts (start of insert to commit): "
          f"{[round((end - start).total_seconds(), 1) for start, end in insert_windows]} s; "
          f"prediction batches written during them: {batches_during_inserts} of {len(prediction_batches)}")
    print(f"  max overlap simulator/prediction {with_prediction:.1f} s, simulator/monitoring {with_monitoring:.1f} s")
    leaked = [str(path) for path in data_dir.rglob("*")
              if path.is_file() and CONN_PASSWORD.encode() in path.read_bytes()]
    print(f"  connection password found in {len(leaked)} of {sum(1 for p in data_dir.rglob('*') if p.is_file())} "
          f"files under the data dir")
    assert leaked == [], f"the connection password leaked into {leaked}"
    assert batches_during_inserts > 0, "no prediction batch was written while a simulator was inserting"
    assert with_prediction > 0, "no simulator task ran while the first ct_prediction task ran"
    assert with_monitoring > 0, "no simulator task ran while an evaluate_champion task ran"
