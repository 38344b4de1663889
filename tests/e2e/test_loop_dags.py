"""ct_prediction, ct_monitoring and ct_simulate_drift end to end with ``dag.test()`` (real Airflow,
real MLflow SQLite store, real SQLite feature store), sharing one sandbox in this order:

(a) ct_monitoring before any champion: succeeds and routes to skip_retraining;
(b) a champion is trained in this process with the pure ct_training steps (no Airflow needed);
(c) ct_prediction twice: every sample scored once, the second run writes nothing;
(d) ct_simulate_drift with Params inserts the requested points; invalid Params (points=0) insert nothing;
(e) ct_prediction scores the drifted points, then ct_monitoring routes to trigger_retraining;
(f) ct_monitoring right after is refused by the cooldown and routes to skip_retraining.

Each scenario runs at most once per module (cached), so a test selected on its own still gets what it needs.
"""
from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest

from ct_operators.events import RunIds, read_events
from ct_operators.store.sqlite import SqliteFeatureStore
from ct_operators.store.types import TimeWindow

pytestmark = pytest.mark.e2e

MODEL = "ct_point_regressor"
DRIFT = {"points": 25, "slope": -3.0, "offset": 400.0, "noise": 1.0, "seed": 7, "label": "e2e-drift"}


class Loop:
    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.settings = sandbox.settings

    def store(self) -> SqliteFeatureStore:
        return SqliteFeatureStore(self.sandbox.store_path)

    def events(self, event: str, airflow_run_id: str) -> list[dict]:
        return [e for e in read_events(self.settings.audit_log, event) if e.get("airflow_run_id") == airflow_run_id]

    def predictions(self) -> int:
        return self.sandbox.sql("SELECT COUNT(*) FROM predictions")[0][0]

    def airflow_sql(self, query: str) -> list[tuple]:
        with closing(sqlite3.connect(Path(self.sandbox.env["AIRFLOW_HOME"]) / "airflow.db")) as conn:
            return conn.execute(query).fetchall()

    def duplicates(self) -> list[tuple]:
        return self.sandbox.sql("SELECT model_name, model_version, sample_id, COUNT(*) FROM predictions "
                                "GROUP BY model_name, model_version, sample_id HAVING COUNT(*) > 1")

    @cached_property
    def monitor_without_champion(self):
        return self.sandbox.run_dag("ct_monitoring")

    @cached_property
    def champion(self) -> dict:
        """Train and promote version 1 with the pure steps (evaluate is skipped: it only adds SHAP)."""
        from ct_operators.training import steps

        self.monitor_without_champion  # noqa: B018 - must run before there is a champion
        ids = RunIds(dag_id="ct_training", run_id="e2e_setup")
        store = self.store()
        extracted = steps.extract(self.settings, store, ids, TimeWindow())
        prepared = steps.prepare(self.settings, ids, steps.validate_data(self.settings, ids, extracted))
        trained = steps.train(self.settings, ids, prepared)
        decision = steps.validate_model(self.settings, ids, prepared, trained)
        return steps.promote(self.settings, store, ids, decision)

    @cached_property
    def predict_twice(self):
        self.champion  # noqa: B018
        first = self.sandbox.run_dag("ct_prediction")
        after_first = self.predictions()
        second = self.sandbox.run_dag("ct_prediction")
        return first, after_first, second, self.predictions()

    @cached_property
    def simulate(self):
        self.predict_twice  # noqa: B018
        before = self.store().count_samples()
        return before, self.sandbox.run_dag("ct_simulate_drift", DRIFT), self.store().count_samples()

    @cached_property
    def simulate_invalid(self):
        """(samples before, result or None, log) — dag.test may refuse the Params before any task runs."""
        self.simulate  # noqa: B018
        before = self.store().count_samples()
        try:
            result = self.sandbox.run_dag("ct_simulate_drift", {**DRIFT, "points": 0, "label": "e2e-invalid"})
        except AssertionError as exc:  # the run did not complete: the runner raised with the log
            return before, None, str(exc)
        return before, result, result.log

    @cached_property
    def monitor_degraded(self):
        self.simulate_invalid  # noqa: B018
        scored = self.sandbox.run_dag("ct_prediction")
        return scored, self.sandbox.run_dag("ct_monitoring")

    @cached_property
    def monitor_again(self):
        self.monitor_degraded  # noqa: B018
        return self.sandbox.run_dag("ct_monitoring")


@pytest.fixture(scope="module")
def loop(airflow_sandbox) -> Loop:
    return Loop(airflow_sandbox)


def assert_states(result, expected: dict[str, str]) -> None:
    assert result.tasks == expected, f"task states {result.tasks}\n--- log tail ---\n{result.log_tail()}"


# -- (a) --------------------------------------------------------------------------------

def test_monitoring_without_champion_skips(loop: Loop) -> None:
    result = loop.monitor_without_champion
    assert result.state == "success", result.log_tail()
    assert_states(result, {"evaluate_champion": "success", "choose_action": "success",
                           "skip_retraining": "success", "trigger_retraining": "skipped"})
    monitored = loop.events("monitored", result.run_id)
    assert [e["status"] for e in monitored] == ["no_champion"]
    skipped = loop.events("skipped", result.run_id)
    assert len(skipped) == 1 and "no champion" in skipped[0]["reason"]
    assert skipped[0]["mlflow_run_id"] == monitored[0]["mlflow_run_id"]
    assert loop.events("triggered", result.run_id) == []
    assert loop.sandbox.sql("SELECT COUNT(*) FROM retrain_triggers")[0][0] == 0


# -- (c) --------------------------------------------------------------------------------

def test_prediction_twice_writes_no_duplicates(loop: Loop) -> None:
    assert loop.champion["promoted"] is True
    first, after_first, second, after_second = loop.predict_twice
    for result in (first, second):
        assert result.state == "success", result.log_tail()
        assert_states(result, {"score_unscored_samples": "success"})
    samples = loop.store().count_samples()
    assert after_first == samples > 0
    assert after_second == after_first
    assert loop.duplicates() == []
    rows = loop.sandbox.sql("SELECT DISTINCT model_name, model_version FROM predictions")
    assert rows == [(MODEL, "1")]
    first_event = loop.events("predicted", first.run_id)
    second_event = loop.events("predicted", second.run_id)
    assert [(e["written"], e["model_version"]) for e in first_event] == [(samples, "1")]
    assert [(e["written"], e["scored"]) for e in second_event] == [(0, 0)]


# -- (d) --------------------------------------------------------------------------------

def test_simulate_drift_inserts_requested_points(loop: Loop) -> None:
    before, result, after = loop.simulate
    assert result.state == "success", result.log_tail()
    assert_states(result, {"insert_simulated_points": "success"})
    assert after == before + DRIFT["points"]
    assert loop.sandbox.sql("SELECT COUNT(*) FROM point_samples WHERE label = ?", ("e2e-drift",))[0][0] == DRIFT["points"]
    events = loop.events("simulated", result.run_id)
    assert len(events) == 1 and events[0]["inserted"] == DRIFT["points"]
    assert events[0]["spec"]["slope"] == DRIFT["slope"] and events[0]["spec"]["seed"] == DRIFT["seed"]


def test_simulate_drift_with_invalid_params_inserts_nothing(loop: Loop) -> None:
    before, result, log = loop.simulate_invalid
    if result is None:  # dag.test() validated the Params and refused to create the run
        assert "ParamValidationError" in log and "param points" in log, log[-3000:]
    else:  # the run was created and its task refused the spec
        assert result.state == "failed"
        assert result.tasks == {"insert_simulated_points": "failed"}, result.tasks
        assert "drift field 'points'" in log
    assert loop.store().count_samples() == before
    assert loop.sandbox.sql("SELECT COUNT(*) FROM point_samples WHERE label = ?", ("e2e-invalid",))[0][0] == 0


# -- (e) --------------------------------------------------------------------------------

def test_monitoring_triggers_retraining_after_drift(loop: Loop) -> None:
    scored, result = loop.monitor_degraded
    assert scored.state == "success", scored.log_tail()
    assert [e["written"] for e in loop.events("predicted", scored.run_id)] == [DRIFT["points"]]
    assert loop.duplicates() == []

    assert result.tasks["evaluate_champion"] == "success", result.log_tail()
    assert result.tasks["choose_action"] == "success", result.log_tail()
    assert result.tasks["skip_retraining"] == "skipped", result.tasks
    assert result.tasks["trigger_retraining"] != "skipped", result.tasks
    monitored = loop.events("monitored", result.run_id)
    assert len(monitored) == 1 and monitored[0]["status"] == "evaluated"
    assert monitored[0]["samples"] >= DRIFT["points"]
    assert monitored[0]["metrics"]["r2"] < loop.settings.r2_threshold
    triggered = loop.events("triggered", result.run_id)
    assert len(triggered) == 1, loop.events("skipped", result.run_id)
    conf = triggered[0]["trigger_conf"]
    assert "R²" in conf["reason"] and conf["window_start"]
    assert conf["triggered_by"] == f"ct_monitoring/{result.run_id}"
    assert triggered[0]["mlflow_run_id"] == monitored[0]["mlflow_run_id"]
    assert loop.sandbox.sql("SELECT monitoring_run_id FROM retrain_triggers") == [(result.run_id,)]
    # the child run was created in Airflow with the report's conf (dag.test() does not run it)
    children = loop.airflow_sql("SELECT run_id, conf FROM dag_run WHERE dag_id = 'ct_training'")
    assert [run_id for run_id, _ in children] == [f"retrain__{result.run_id}"]
    assert json.loads(children[0][1]) == conf


# -- (f) --------------------------------------------------------------------------------

def test_monitoring_right_after_is_held_by_the_cooldown(loop: Loop) -> None:
    result = loop.monitor_again
    assert result.state == "success", result.log_tail()
    assert result.tasks["skip_retraining"] == "success", result.tasks
    assert result.tasks["trigger_retraining"] == "skipped", result.tasks
    skipped = loop.events("skipped", result.run_id)
    assert len(skipped) == 1
    reason = skipped[0]["reason"]
    # the retraining just triggered is either still holding its lease or within the cooldown
    assert "cooldown" in reason or "still active" in reason, reason
    assert loop.events("triggered", result.run_id) == []
    assert loop.sandbox.sql("SELECT COUNT(*) FROM retrain_triggers")[0][0] == 1
