"""Pure training logic: split, model building, scores, the promotion rule, window parsing, staging."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from ct_operators.store.types import TimeWindow
from ct_operators.training.data import (
    EmptyWindowError, extract_window, load_staged, parse_window, run_folder, stage_frame, staged_path,
)
from ct_operators.training.decide import Decision, Scores, decide_promotion
from ct_operators.training.metrics import regression_scores
from ct_operators.training.model import ModelConfigError, build_pipeline, import_class
from ct_operators.training.prepare import split_frame, xy

UTC = timezone.utc


def frame(n: int = 30) -> pd.DataFrame:
    x = np.arange(n, dtype="float64")
    return pd.DataFrame({"id": np.arange(1, n + 1), "x": x, "y": 3 * x + 2})


# -- prepare ---------------------------------------------------------------------------

def test_split_is_reproducible_with_the_seed() -> None:
    a_train, a_test = split_frame(frame(), test_size=0.2, seed=7)
    b_train, b_test = split_frame(frame(), test_size=0.2, seed=7)
    pd.testing.assert_frame_equal(a_train, b_train)
    pd.testing.assert_frame_equal(a_test, b_test)
    assert (len(a_train), len(a_test)) == (24, 6)
    assert set(a_train["id"]).isdisjoint(a_test["id"])
    assert set(a_train["id"]) | set(a_test["id"]) == set(frame()["id"])
    assert list(a_test.index) == list(range(6))


def test_split_changes_with_the_seed() -> None:
    tests = {tuple(sorted(split_frame(frame(), test_size=0.2, seed=s)[1]["id"])) for s in range(5)}
    assert len(tests) > 1


def test_split_needs_two_rows() -> None:
    with pytest.raises(ValueError, match="1 row"):
        split_frame(frame(1), test_size=0.5, seed=1)


def test_xy_selects_float_columns() -> None:
    X, y = xy(frame(3).astype({"x": "int64"}), ["x"], "y")
    assert list(X.columns) == ["x"] and X["x"].dtype == "float64" and y.dtype == "float64"


# -- model -----------------------------------------------------------------------------

def test_build_default_pipeline_fits() -> None:
    pipe = build_pipeline("sklearn.linear_model.LinearRegression", {"fit_intercept": True},
                          "sklearn.preprocessing.StandardScaler")
    assert isinstance(pipe, Pipeline)
    assert [name for name, _ in pipe.steps] == ["preprocess", "model"]
    X, y = xy(frame(), ["x"], "y")
    assert np.allclose(pipe.fit(X, y).predict(X), y)


def test_build_without_preprocessor() -> None:
    pipe = build_pipeline("sklearn.linear_model.Ridge", {"alpha": 0.5})
    assert [name for name, _ in pipe.steps] == ["model"]
    assert pipe.named_steps["model"].alpha == 0.5


@pytest.mark.parametrize("path, match", [
    ("sklearn.nope.Missing", "cannot import module 'sklearn.nope'"),
    ("sklearn.linear_model.Missing", "no class 'Missing'"),
    ("LinearRegression", "not a dotted import path"),
    ("sklearn.linear_model.ridge_regression", "no class"),  # a function, not a class
])
def test_bad_model_class(path: str, match: str) -> None:
    with pytest.raises(ModelConfigError, match=match) as info:
        build_pipeline(path, {})
    assert "'model_class'" in str(info.value)


def test_bad_preprocessor_class_names_its_setting() -> None:
    with pytest.raises(ModelConfigError, match="'preprocessor_class'"):
        build_pipeline("sklearn.linear_model.Ridge", {}, "sklearn.preprocessing.Nope")


@pytest.mark.parametrize("path", ["sklearn.linear_model.LogisticRegression", "sklearn.preprocessing.StandardScaler",
                                  "collections.OrderedDict"])
def test_non_regressor_rejected(path: str) -> None:
    with pytest.raises(ModelConfigError, match="not a scikit-learn regressor"):
        build_pipeline(path, {})


def test_unknown_hyperparameter_name() -> None:
    with pytest.raises(ModelConfigError, match="'model_params'.*alpah"):
        build_pipeline("sklearn.linear_model.Ridge", {"alpah": 1.0})


@pytest.mark.parametrize("params", [{"alpha": -1}, {"alpha": "big"}, {"solver": "magic"}])
def test_invalid_hyperparameter_value(params: dict) -> None:
    with pytest.raises(ModelConfigError, match="'model_params'.*invalid hyperparameters"):
        build_pipeline("sklearn.linear_model.Ridge", params)


def test_invalid_hyperparameter_of_other_estimator() -> None:
    with pytest.raises(ModelConfigError, match="n_estimators"):
        build_pipeline("sklearn.ensemble.RandomForestRegressor", {"n_estimators": 0})


def test_model_config_error_is_value_error() -> None:
    assert issubclass(ModelConfigError, ValueError)
    assert import_class("sklearn.dummy.DummyRegressor", "model_class").__name__ == "DummyRegressor"


# -- metrics ---------------------------------------------------------------------------

def test_regression_scores_values() -> None:
    s = regression_scores([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 6.0])
    assert s.mae == pytest.approx(0.5)
    assert s.rmse == pytest.approx(1.0)
    assert s.r2 == pytest.approx(1 - 4 / 5)


def test_perfect_scores() -> None:
    s = regression_scores(np.array([1, 5, 9]), [1, 5, 9])
    assert (s.mae, s.rmse, s.r2) == (0.0, 0.0, 1.0)
    assert s.as_dict() == {"mae": 0.0, "rmse": 0.0, "r2": 1.0}


@pytest.mark.parametrize("n", [0, 1])
def test_regression_scores_need_two_points(n: int) -> None:
    with pytest.raises(ValueError, match=f"at least 2.*got {n}"):
        regression_scores([1.0] * n, [1.0] * n)


def test_regression_scores_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="2 predictions for 3 targets"):
        regression_scores([1.0, 2.0, 3.0], [1.0, 2.0])


# -- decide ----------------------------------------------------------------------------

GOOD = Scores(mae=1.0, rmse=1.5, r2=0.9)


def test_first_model_above_floor_is_promoted() -> None:
    d = decide_promotion(GOOD, None, r2_floor=0.5, serves=True)
    assert d.promote is True
    assert any("no champion" in r for r in d.reasons)
    assert any("above the floor" in r for r in d.reasons)
    assert d.as_dict() == {"promote": True, "reasons": d.reasons}


@pytest.mark.parametrize("r2", [0.5, 0.1, -3.0])
def test_first_model_not_above_floor_is_rejected(r2: float) -> None:
    d = decide_promotion(Scores(1.0, 1.0, r2), None, r2_floor=0.5, serves=True)
    assert d.promote is False
    assert any("not above the floor" in r for r in d.reasons)


def test_better_challenger_is_promoted() -> None:
    d = decide_promotion(GOOD, Scores(mae=2.0, rmse=2.5, r2=0.8), r2_floor=0.0, serves=True)
    assert d.promote is True
    assert any("MAE" in r and "<" in r for r in d.reasons)
    assert any("R²" in r and ">" in r for r in d.reasons)


def test_lower_mae_but_not_higher_r2_is_rejected() -> None:
    d = decide_promotion(GOOD, Scores(mae=2.0, rmse=1.0, r2=0.95), r2_floor=0.0, serves=True)
    assert d.promote is False
    assert any("R² 0.9000 is not higher" in r for r in d.reasons)


def test_equal_scores_are_rejected() -> None:
    d = decide_promotion(GOOD, GOOD, r2_floor=0.0, serves=True)
    assert d.promote is False
    assert any("MAE" in r and "not lower" in r for r in d.reasons)
    assert any("R²" in r and "not higher" in r for r in d.reasons)


def test_higher_r2_but_not_lower_mae_is_rejected() -> None:
    d = decide_promotion(GOOD, Scores(mae=0.5, rmse=1.0, r2=0.5), r2_floor=0.0, serves=True)
    assert d.promote is False
    assert any("MAE 1.0000 is not lower" in r for r in d.reasons)


def test_serve_failure_is_rejected_with_its_error() -> None:
    d = decide_promotion(GOOD, None, r2_floor=0.0, serves=False, serve_error="OSError: no model file")
    assert d.promote is False
    assert any("load-and-serve" in r and "no model file" in r for r in d.reasons)


def test_non_finite_challenger_is_rejected() -> None:
    d = decide_promotion(Scores(float("inf"), float("inf"), float("-inf")), None, r2_floor=-1e9,
                         serves=False)
    assert d.promote is False
    assert any("not finite" in r for r in d.reasons)


def test_reasons_always_present() -> None:
    for d in (decide_promotion(GOOD, None, r2_floor=0.0, serves=True),
              decide_promotion(GOOD, GOOD, r2_floor=0.99, serves=False)):
        assert isinstance(d, Decision) and d.reasons and all(isinstance(r, str) and r for r in d.reasons)


# -- data ------------------------------------------------------------------------------

def test_parse_window_naive_is_utc() -> None:
    w = parse_window("2026-03-01T10:00:00", "2026-03-02")
    assert w.start == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert w.end == datetime(2026, 3, 2, tzinfo=UTC)


def test_parse_window_z_suffix_and_offset() -> None:
    w = parse_window("2026-03-01T10:00:00Z", "2026-03-01T12:00:00+01:00")
    assert w.start == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert w.end == datetime(2026, 3, 1, 11, tzinfo=UTC)


def test_parse_window_empty_bounds_are_open() -> None:
    assert parse_window(None, "  ") == TimeWindow()
    assert parse_window("", None).as_dict() == {"start": None, "end": None}


def test_parse_window_accepts_datetimes() -> None:
    w = parse_window(datetime(2026, 3, 1), datetime(2026, 3, 2, tzinfo=UTC))
    assert w.start == datetime(2026, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize("start, end, field_name", [
    ("yesterday", None, "window_start"),
    (None, "2026-13-45", "window_end"),
    ("2026-03-01", "not a date", "window_end"),
])
def test_parse_window_garbage_names_field(start, end, field_name: str) -> None:
    with pytest.raises(ValueError, match=field_name):
        parse_window(start, end)


def test_parse_window_reversed_bounds() -> None:
    with pytest.raises(ValueError, match="not before"):
        parse_window("2026-03-02", "2026-03-01")


def test_stage_and_load_round_trip(tmp_path: Path) -> None:
    folder = run_folder(tmp_path / "staging", "ct_training", "manual__2026-03-01T10:00:00+00:00")
    assert folder.is_dir() and folder.parent.name == "ct_training"
    assert ":" not in folder.name and "+" not in folder.name
    uri = stage_frame(frame(5), folder / "extracted.parquet")
    assert uri.startswith("file://")
    pd.testing.assert_frame_equal(load_staged(uri), frame(5))
    assert not list(folder.glob("*.tmp"))


def test_load_staged_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="file://"):
        load_staged(str(tmp_path / "x.parquet"))
    with pytest.raises(ValueError, match="file://"):
        load_staged("s3://bucket/x.parquet")
    with pytest.raises(FileNotFoundError, match="re-run the upstream task"):
        load_staged((tmp_path / "missing.parquet").as_uri())


def test_extract_window(sqlite_store) -> None:
    from ct_operators.store.types import Sample

    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    sqlite_store.insert_samples([Sample(x=float(i), y=float(i), event_ts=t0 + timedelta(hours=i)) for i in range(4)])
    assert len(extract_window(sqlite_store, TimeWindow(t0, t0 + timedelta(hours=2)))) == 2
    with pytest.raises(EmptyWindowError, match="no samples in window"):
        extract_window(sqlite_store, TimeWindow(t0 + timedelta(days=1)))


@pytest.mark.parametrize("folder", ["my data", "100%", "a+b", "daten-ü"])
def test_stage_and_load_under_folders_needing_escapes(tmp_path: Path, folder: str) -> None:
    """Regression: the staged file:// URI is percent-encoded and must be decoded when read back."""
    target = tmp_path / folder / "extracted.parquet"
    uri = stage_frame(frame(3), target)
    assert staged_path(uri) == target.resolve()
    pd.testing.assert_frame_equal(load_staged(uri), frame(3))


@pytest.mark.parametrize("n, test_size", [(10, 0.1), (10, 0.01), (10, 0.95), (4, 0.5), (100, 0.001)])
def test_split_never_leaves_a_part_too_small_to_score(n: int, test_size: float) -> None:
    """Regression: min_rows=10 with test_size < 0.15 left a 1-row holdout that evaluate could not score."""
    train, test = split_frame(frame(n), test_size=test_size, seed=42)
    assert len(train) >= 2 and len(test) >= 2
    assert len(train) + len(test) == n
    regression_scores(test["y"], test["y"])


@pytest.mark.parametrize("n", [2, 3])
def test_split_refuses_fewer_than_four_rows(n: int) -> None:
    with pytest.raises(ValueError, match=f"cannot split {n} row"):
        split_frame(frame(n), test_size=0.5, seed=1)
