"""Priority 2: bad training data and bad model configuration, through the real ``ct_training`` steps on a
real SQLite feature store and a real (local SQLite) MLflow store. Rows are written with plain sqlite3, so
they can hold what the typed API refuses (text in REAL columns, infinities).

Each case has its own feature store and registered model name; the module shares one MLflow store.
"""
from __future__ import annotations

import dataclasses
import sqlite3
import uuid
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from ct_operators import registry
from ct_operators.events import RunIds, read_events
from ct_operators.store.types import TimeWindow
from ct_operators.training import steps
from ct_operators.training.data import EmptyWindowError
from ct_operators.training.model import ModelConfigError
from ct_operators.training.validation import DataValidationError

from reliability_support import local_settings, new_store

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)


def good_rows(n: int = 20) -> list[tuple]:
    return [(float(50 + 3 * i), 1.2 * (50 + 3 * i) + 9.0 + (i % 3), "good") for i in range(n)]


def insert_raw(db: Path, rows: list[tuple]) -> None:
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.executemany("INSERT INTO point_samples (x, y, label, event_ts) VALUES (?, ?, ?, ?)",
                         [(*r, (T0 + timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M:%S.%f")) for i, r in enumerate(rows)])


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory):
    settings = local_settings(tmp_path_factory.mktemp("ct_data_quality"))
    registry.connect(settings)
    return settings


def case(base, tmp_path: Path, rows: list[tuple], **overrides):
    model = f"m_{uuid.uuid4().hex[:8]}"
    settings = dataclasses.replace(base, registered_model_name=model, **overrides)
    store = new_store(tmp_path / "fs.db", seed=False)
    insert_raw(store.path, rows)
    return settings, store, RunIds(dag_id="ct_training", run_id=f"manual__{model}")


def assert_nothing_promoted(settings, store, ids: RunIds) -> None:
    client = registry.connect(settings)
    assert client.search_model_versions(f"name = '{settings.registered_model_name}'") == []
    assert registry.version_by_alias(client, settings.registered_model_name, settings.champion_alias) is None
    assert store.get_serving_pointer() is None
    assert [e for e in read_events(settings.audit_log, "promoted") if e["airflow_run_id"] == ids.run_id] == []


BAD_DATA = {
    # name: (rows, expected check in the error message)
    "text_in_numeric_column": (good_rows() + [("abc", 10.0, "bad"), ("12,5", 11.0, "bad")],
                               "numeric_type: 2 non-numeric value(s) in 'x'"),
    "nan_target": (good_rows() + [(60.0, None, "bad")], "missing_values: 1 missing value(s) in 'y'"),
    "infinite_feature": (good_rows() + [(float("inf"), 5.0, "bad")], "finite_values: 1 infinite value(s) in 'x'"),
    "single_row": (good_rows(1), "min_rows: 1 row(s), at least 10 needed"),
    "constant_feature": ([(7.0, float(i), "c") for i in range(20)], "constant_column: feature 'x' is constant"),
    "too_few_usable_rows": (good_rows(6) + [(None, 1.0, "n")] * 6, "missing_values"),
}


@pytest.mark.parametrize("name", list(BAD_DATA))
def test_bad_data_fails_validate_data_and_nothing_is_promoted(base, tmp_path: Path, name: str) -> None:
    rows, expected = BAD_DATA[name]
    settings, store, ids = case(base, tmp_path, rows)
    extracted = steps.extract(settings, store, ids, TimeWindow())
    with pytest.raises(DataValidationError) as err:
        steps.validate_data(settings, ids, extracted)
    assert expected in str(err.value), str(err.value)
    # the report is kept: in MLflow and in the audit log
    run = registry.connect(settings).get_run(extracted["mlflow_run_id"])
    assert run.data.tags["ct.validation"] == "failed"
    audit = [e for e in read_events(settings.audit_log, "validated") if e["airflow_run_id"] == ids.run_id]
    assert [e["passed"] for e in audit] == [False] and audit[0]["errors"]
    assert_nothing_promoted(settings, store, ids)
    assert store.count_samples() == len(rows)  # validation never deletes data


def test_empty_window_fails_at_extract(base, tmp_path: Path) -> None:
    settings, store, ids = case(base, tmp_path, good_rows())
    with pytest.raises(EmptyWindowError, match="no samples in window"):
        steps.extract(settings, store, ids, TimeWindow(start=T0 - timedelta(days=30), end=T0 - timedelta(days=29)))
    assert_nothing_promoted(settings, store, ids)


def test_duplicates_and_allowed_missing_values_warn_as_configured_and_proceed(base, tmp_path: Path) -> None:
    """With ``max_missing_fraction`` 0.2, missing values and duplicates are warnings: the run proceeds."""
    rows = good_rows() + good_rows(3) + [(70.0, None, "no-label")]
    settings, store, ids = case(base, tmp_path, rows, max_missing_fraction=0.2)
    extracted = steps.extract(settings, store, ids, TimeWindow())
    validated = steps.validate_data(settings, ids, extracted)
    assert validated["rows"] == len(rows) - 1 and validated["warnings"] == 2
    audit = [e for e in read_events(settings.audit_log, "validated") if e["airflow_run_id"] == ids.run_id][0]
    assert audit["passed"] is True
    assert any("duplicated row" in w for w in audit["warnings"]) and any("missing" in w for w in audit["warnings"])
    prepared = steps.prepare(settings, ids, validated)  # the next step runs on the cleaned rows
    assert prepared["train_rows"] + prepared["test_rows"] == len(rows) - 1
    # the same data with the default (no missing values allowed) is an error
    strict = dataclasses.replace(settings, max_missing_fraction=0.0)
    with pytest.raises(DataValidationError, match="missing_values"):
        steps.validate_data(strict, RunIds("ct_training", ids.run_id + "_strict"), extracted)


@pytest.mark.parametrize(("model_class", "params", "match"), [
    ("sklearn.nope.Missing", {}, "setting 'model_class': cannot import module 'sklearn.nope'"),
    ("sklearn.linear_model.Nope", {}, "setting 'model_class': module 'sklearn.linear_model' has no class 'Nope'"),
    ("LinearRegression", {}, "not a dotted import path"),
    ("sklearn.linear_model.LogisticRegression", {}, "is not a scikit-learn regressor"),
    ("sklearn.linear_model.LinearRegression", {"fit_intercept": "yes"}, "setting 'model_params'"),
    ("sklearn.linear_model.Ridge", {"alpha": -1.0}, "setting 'model_params'"),
    ("sklearn.linear_model.Ridge", {"no_such_param": 1}, "setting 'model_params'"),
])
def test_bad_model_config_fails_at_extract_before_any_data_is_read(base, tmp_path: Path, model_class, params,
                                                                  match) -> None:
    settings, store, ids = case(base, tmp_path, good_rows(), model_class=model_class, model_params=params)
    with pytest.raises(ModelConfigError, match=match):
        steps.extract(settings, store, ids, TimeWindow())
    # failed at the start: no training run recorded, nothing staged, no MLflow run for this Airflow run
    assert store.active_training_runs(T0 - timedelta(days=3650)) == []
    assert not steps.output_path(settings, ids, "extract_data").parent.joinpath("extracted.parquet").exists()
    client = registry.connect(settings)
    exp = client.get_experiment_by_name(settings.training_experiment)
    if exp is not None:
        assert client.search_runs([exp.experiment_id], filter_string=f"tags.`airflow.run_id` = '{ids.run_id}'") == []
    assert_nothing_promoted(settings, store, ids)
