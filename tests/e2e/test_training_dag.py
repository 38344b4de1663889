"""``ct_training`` end to end: real Airflow (``dag.test()``), real MLflow (SQLite store), real SQLite feature store.

The scenarios share one sandbox and build on each other, in this order:

(a) first run on the seed data: version 1 becomes the champion and the serving pointer;
(b) a worse model (DummyRegressor): version 2 is registered but rejected, champion stays 1;
(c) a window holding only rows without a target: fails at validate_data, nothing downstream runs;
(d) a model class that does not exist: fails at extract_data with a ModelConfigError.

Each scenario runs at most once per module (``Scenarios`` caches it), so a test selected on its own
still gets the runs it depends on.
"""
from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from datetime import datetime, timedelta, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest

from ct_operators.events import read_events
from ct_operators.store.sqlite import SqliteFeatureStore

pytestmark = pytest.mark.e2e

MODEL = "ct_point_regressor"
TASKS = ["extract_data", "validate_data", "prepare_data", "train_model", "evaluate_model",
         "validate_model", "approve_promotion", "promote_model"]
BAD_WINDOW_START = datetime(2025, 1, 1, tzinfo=timezone.utc)  # before the seed data (2026)


class Scenarios:
    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.settings = sandbox.settings

    @cached_property
    def client(self):
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.settings.tracking_uri, registry_uri=self.settings.tracking_uri)

    @cached_property
    def first(self):
        return self.sandbox.run_dag("ct_training")

    @cached_property
    def worse(self):
        self.first  # noqa: B018 - needs a champion to compare against
        return self.sandbox.run_dag("ct_training", {"model_class": "sklearn.dummy.DummyRegressor", "model_params": {}})

    @cached_property
    def bad_data(self):
        self.worse  # noqa: B018
        rows = [(float(i), None, "no-target", (BAD_WINDOW_START + timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M:%S.%f"))
                for i in range(3)]
        with closing(sqlite3.connect(self.sandbox.store_path)) as conn, conn:
            conn.executemany("INSERT INTO point_samples (x, y, label, event_ts) VALUES (?, ?, ?, ?)", rows)
        return self.sandbox.run_dag("ct_training", {
            "window_start": BAD_WINDOW_START.isoformat().replace("+00:00", "Z"),
            "window_end": (BAD_WINDOW_START + timedelta(days=1)).isoformat().replace("+00:00", "Z")})

    @cached_property
    def bad_model(self):
        self.bad_data  # noqa: B018
        return self.sandbox.run_dag("ct_training", {"model_class": "sklearn.nope.Missing"})

    # -- inspection helpers ------------------------------------------------------------
    def store(self) -> SqliteFeatureStore:
        return SqliteFeatureStore(self.sandbox.store_path)

    def champion_version(self) -> str:
        return str(self.client.get_model_version_by_alias(MODEL, self.settings.champion_alias).version)

    def versions(self) -> list[str]:
        return sorted((str(mv.version) for mv in self.client.search_model_versions(f"name = '{MODEL}'")), key=int)

    def mlflow_runs_of(self, airflow_run_id: str) -> list:
        exp = self.client.get_experiment_by_name(self.settings.training_experiment)
        return self.client.search_runs([exp.experiment_id], filter_string=f"tags.`airflow.run_id` = '{airflow_run_id}'")

    def mlflow_run_of(self, airflow_run_id: str):
        runs = self.mlflow_runs_of(airflow_run_id)
        assert len(runs) == 1, f"expected one MLflow run for {airflow_run_id}, found {len(runs)}"
        return runs[0]

    def artifacts(self, run_id: str, path: str | None = None) -> set[str]:
        out: set[str] = set()
        for item in self.client.list_artifacts(run_id, path):
            out |= self.artifacts(run_id, item.path) if item.is_dir else {item.path}
        return out

    def load_artifact_json(self, run_id: str, path: str, tmp: Path) -> dict:
        local = self.client.download_artifacts(run_id, path, str(tmp))
        return json.loads(Path(local).read_text(encoding="utf-8"))

    def events(self, event: str, airflow_run_id: str) -> list[dict]:
        return [e for e in read_events(self.settings.audit_log, event) if e.get("airflow_run_id") == airflow_run_id]

    def training_run_status(self, airflow_run_id: str) -> str | None:
        rows = self.sandbox.sql("SELECT status FROM training_runs WHERE run_id = ?", (airflow_run_id,))
        return rows[0][0] if rows else None


@pytest.fixture(scope="module")
def scenarios(airflow_sandbox) -> Scenarios:
    return Scenarios(airflow_sandbox)


def assert_states(result, expected: dict[str, str]) -> None:
    assert result.tasks == expected, f"task states {result.tasks}\n--- log tail ---\n{result.log_tail()}"


# -- (a) first run -----------------------------------------------------------------------

def test_first_run_promotes_version_1(scenarios: Scenarios) -> None:
    result = scenarios.first
    assert_states(result, {t: "success" for t in TASKS})
    assert result.state == "success"

    champion = scenarios.client.get_model_version_by_alias(MODEL, scenarios.settings.champion_alias)
    assert str(champion.version) == "1"
    assert scenarios.versions() == ["1"]
    assert scenarios.store().get_serving_pointer() == f"models:/{MODEL}/1"
    assert scenarios.training_run_status(result.run_id) == "promoted"

    run = scenarios.mlflow_run_of(result.run_id)
    assert champion.run_id == run.info.run_id
    assert run.info.status == "FINISHED"
    metrics = run.data.metrics
    for name in ("holdout_mae", "holdout_rmse", "holdout_r2", "r2_score", "mean_absolute_error"):
        assert name in metrics, f"metric {name} missing; have {sorted(metrics)}"
    assert metrics["holdout_r2"] > scenarios.settings.r2_floor
    assert metrics["holdout_mae"] >= 0
    tags = run.data.tags
    assert tags["ct.decision"] == "promote"
    assert tags["ct.promoted"] == "true"
    assert tags["ct.validation"] == "passed"
    assert tags["ct.registered_version"] == "1"
    assert tags["airflow.dag_id"] == "ct_training"


def test_first_run_logs_plots_shap_and_explainer(scenarios: Scenarios) -> None:
    result = scenarios.first
    run_id = scenarios.mlflow_run_of(result.run_id).info.run_id
    artifacts = scenarios.artifacts(run_id)
    for path in ("plots/predicted_vs_actual.png", "plots/residuals.png", "plots/champion_vs_challenger.png",
                 "validation/report.json", "validation/model_comparison.json"):
        assert path in artifacts, f"{path} missing; have {sorted(artifacts)}"
    shap_plots = {a for a in artifacts if "shap" in a.lower() and a.endswith(".png")}
    assert shap_plots, f"no SHAP plots among {sorted(artifacts)}"

    exp_id = scenarios.client.get_run(run_id).info.experiment_id
    logged = scenarios.client.search_logged_models(experiment_ids=[exp_id],
                                                   filter_string=f"source_run_id = '{run_id}'")
    names = {m.name for m in logged}
    assert "explainer" in names, f"logged models of the run: {names}"
    assert "model" in names
    explainer = next(m for m in logged if m.name == "explainer")
    version_tags = scenarios.client.get_model_version(MODEL, "1").tags
    assert version_tags["ct.explainer_uri"] == explainer.model_uri
    assert version_tags["airflow.run_id"] == result.run_id
    assert version_tags["ct.decision"] == "promote"


def test_first_run_audit_trail(scenarios: Scenarios) -> None:
    result = scenarios.first
    mlflow_run_id = scenarios.mlflow_run_of(result.run_id).info.run_id
    promoted = scenarios.events("promoted", result.run_id)
    assert len(promoted) == 1
    event = promoted[0]
    assert event["dag_id"] == "ct_training"
    assert event["task_id"] == "promote_model"
    assert event["mlflow_run_id"] == mlflow_run_id
    assert event["model_version"] == "1"
    assert event["previous_version"] is None
    assert event["serving_pointer"] == f"models:/{MODEL}/1"
    assert event["reasons"]
    for step in ("extracted", "validated", "prepared", "trained", "evaluated"):
        assert [e["mlflow_run_id"] for e in scenarios.events(step, result.run_id)] == [mlflow_run_id], step
    assert scenarios.events("rejected", result.run_id) == []


# -- (b) a worse challenger --------------------------------------------------------------

def test_worse_model_is_registered_but_not_promoted(scenarios: Scenarios) -> None:
    result = scenarios.worse
    assert_states(result, {t: "success" for t in TASKS})
    assert result.state == "success"

    assert scenarios.versions() == ["1", "2"]
    assert scenarios.champion_version() == "1"
    assert scenarios.store().get_serving_pointer() == f"models:/{MODEL}/1"
    assert scenarios.training_run_status(result.run_id) == "not_promoted"

    run = scenarios.mlflow_run_of(result.run_id)
    assert scenarios.client.get_model_version(MODEL, "2").run_id == run.info.run_id
    tags = run.data.tags
    assert tags["ct.decision"] == "reject"
    assert tags["ct.champion_version"] == "1"
    assert tags["ct.model_class"] == "sklearn.dummy.DummyRegressor"
    assert "ct.promoted" not in tags
    reasons = tags["ct.decision_reasons"]
    assert "MAE" in reasons or "R²" in reasons, reasons
    assert "not lower" in reasons or "not higher" in reasons, reasons
    assert scenarios.client.get_model_version(MODEL, "2").tags["ct.decision"] == "reject"
    assert run.info.status == "FINISHED"
    assert run.data.metrics["holdout_r2"] < scenarios.mlflow_run_of(scenarios.first.run_id).data.metrics["holdout_r2"]


def test_worse_model_audit_trail(scenarios: Scenarios, tmp_path: Path) -> None:
    result = scenarios.worse
    run_id = scenarios.mlflow_run_of(result.run_id).info.run_id
    rejected = scenarios.events("rejected", result.run_id)
    assert len(rejected) == 1
    assert rejected[0]["mlflow_run_id"] == run_id
    assert rejected[0]["model_version"] == "2"
    assert any("MAE" in r or "R²" in r for r in rejected[0]["reasons"])
    assert scenarios.events("promoted", result.run_id) == []
    comparison = scenarios.load_artifact_json(run_id, "validation/model_comparison.json", tmp_path)
    assert comparison["promote"] is False
    assert comparison["champion"] is not None
    assert comparison["challenger"]["mae"] > comparison["champion"]["mae"]


# -- (c) invalid data --------------------------------------------------------------------

def test_invalid_data_fails_at_validate_data(scenarios: Scenarios, tmp_path: Path) -> None:
    result = scenarios.bad_data
    assert result.state == "failed"
    assert_states(result, {"extract_data": "success", "validate_data": "failed",
                           **{t: "upstream_failed" for t in TASKS[2:]}})
    assert result.tries["validate_data"] == 1  # no retries for bad data
    assert "DataValidationError" in result.log

    # the failure callback records why, naming the problems
    finished = scenarios.events("training_finished", result.run_id)
    assert [e["status"] for e in finished] == ["failed"]
    assert finished[0]["task_id"] == "validate_data"
    error = finished[0]["error"]
    assert "missing value" in error and "'y'" in error, error
    assert "min_rows" in error and "3 row(s)" in error, error
    assert scenarios.training_run_status(result.run_id) == "failed"

    validated = scenarios.events("validated", result.run_id)
    assert len(validated) == 1 and validated[0]["passed"] is False

    # the report was saved before the task failed; nothing was trained or promoted
    run = scenarios.mlflow_run_of(result.run_id)
    assert run.data.tags["ct.validation"] == "failed"
    assert run.data.tags["ct.rows"] == "3"
    report = scenarios.load_artifact_json(run.info.run_id, "validation/report.json", tmp_path)
    assert report["rows"] == 3 and report["errors"] >= 2
    assert {"missing_values", "min_rows"} <= {f["check"] for f in report["findings"] if f["level"] == "error"}
    assert "ct.registered_version" not in run.data.tags
    assert scenarios.versions() == ["1", "2"]
    assert scenarios.champion_version() == "1"
    assert scenarios.store().get_serving_pointer() == f"models:/{MODEL}/1"
    for event in ("trained", "promoted", "rejected"):
        assert scenarios.events(event, result.run_id) == []


# -- (d) model configuration error --------------------------------------------------------

def test_model_config_error_fails_at_extract_data(scenarios: Scenarios) -> None:
    result = scenarios.bad_model
    assert result.state == "failed"
    assert_states(result, {"extract_data": "failed", **{t: "upstream_failed" for t in TASKS[1:]}})
    assert "ModelConfigError: setting 'model_class': cannot import module 'sklearn.nope'" in result.log

    finished = scenarios.events("training_finished", result.run_id)
    assert finished and all(e["status"] == "failed" and e["task_id"] == "extract_data" for e in finished)
    assert "'model_class'" in finished[-1]["error"] and "sklearn.nope" in finished[-1]["error"]

    # checked before any data is read or any MLflow run is made
    assert scenarios.events("extracted", result.run_id) == []
    assert scenarios.mlflow_runs_of(result.run_id) == []
    assert scenarios.training_run_status(result.run_id) is None
    assert scenarios.versions() == ["1", "2"]
    assert scenarios.champion_version() == "1"
    assert scenarios.store().get_serving_pointer() == f"models:/{MODEL}/1"
