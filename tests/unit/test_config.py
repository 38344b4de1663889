"""Settings: defaults <- CT_* environment <- Params; malformed values name their field."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ct_operators.config import ConfigError, Settings, load_settings, validate_settings


def test_settings_fixture_roots_every_path_in_tmp(settings: Settings, tmp_path: Path) -> None:
    assert settings.data_dir == tmp_path.resolve()
    for path in (settings.artifact_root, settings.staging_dir, settings.model_cache_dir,
                 settings.audit_log, settings.sqlite_path):
        assert tmp_path.resolve() in path.parents
    assert settings.tracking_uri == f"sqlite:///{tmp_path.resolve() / 'mlflow' / 'mlflow.db'}"


def test_defaults_without_environment() -> None:
    s = load_settings(environ={})
    assert s.features == ("x",)
    assert s.target == "y"
    assert s.min_rows == 10
    assert s.require_approval is False


def test_environment_overrides_defaults(tmp_path: Path) -> None:
    env = {"CT_DATA_DIR": str(tmp_path), "CT_MIN_ROWS": "25", "CT_TEST_SIZE": "0.3",
           "CT_REQUIRE_APPROVAL": "yes", "CT_FEATURES": "a, b", "CT_TARGET": "z",
           "CT_MODEL_PARAMS": '{"alpha": 0.5}', "CT_MODEL_CLASS": "sklearn.linear_model.Ridge",
           "CT_MLFLOW_TRACKING_URI": "http://mlflow:5000", "UNRELATED": "x"}
    s = load_settings(environ=env)
    assert s.data_dir == tmp_path.resolve()
    assert s.min_rows == 25 and isinstance(s.min_rows, int)
    assert s.test_size == 0.3
    assert s.require_approval is True
    assert s.features == ("a", "b")
    assert s.target == "z"
    assert s.model_params == {"alpha": 0.5}
    assert s.model_class == "sklearn.linear_model.Ridge"
    assert s.tracking_uri == "http://mlflow:5000"


def test_features_as_json_list() -> None:
    assert load_settings(environ={"CT_FEATURES": '["p", "q"]'}).features == ("p", "q")


def test_params_override_environment() -> None:
    s = load_settings({"min_rows": 40, "seed": 7, "require_approval": False, "r2_floor": 0.5},
                      environ={"CT_MIN_ROWS": "25", "CT_SEED": "3", "CT_REQUIRE_APPROVAL": "true"})
    assert (s.min_rows, s.seed, s.require_approval, s.r2_floor) == (40, 7, False, 0.5)


def test_params_none_and_unknown_keys_are_ignored() -> None:
    s = load_settings({"min_rows": None, "window_start": "2026-01-01", "reason": "manual"},
                      environ={"CT_MIN_ROWS": "12"})
    assert s.min_rows == 12
    assert not hasattr(s, "window_start")


def test_with_overrides_returns_new_object(settings: Settings) -> None:
    changed = settings.with_overrides({"seed": 1})
    assert changed.seed == 1
    assert settings.seed == 42
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.seed = 3  # type: ignore[misc]


@pytest.mark.parametrize("name, value", [
    ("min_rows", "ten"),
    ("min_rows", 2.5),
    ("test_size", "abc"),
    ("test_size", "nan"),
    ("r2_floor", float("nan")),
    ("require_approval", "maybe"),
    ("features", ""),
    ("features", " , "),
    ("model_params", "{not json"),
    ("model_params", "[1, 2]"),
    ("seed", "4.2"),
])
def test_malformed_param_raises_config_error_naming_field(name: str, value: object) -> None:
    with pytest.raises(ConfigError, match=repr(name)):
        load_settings({name: value}, environ={})


@pytest.mark.parametrize("var, field_name, value", [
    ("CT_MIN_ROWS", "min_rows", "many"),
    ("CT_RETRAIN_COOLDOWN_MINUTES", "retrain_cooldown_minutes", "soon"),
    ("CT_OUTLIERS_ARE_ERRORS", "outliers_are_errors", "perhaps"),
    ("CT_MODEL_PARAMS", "model_params", "alpha=1"),
])
def test_malformed_environment_raises_config_error_naming_field(var: str, field_name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=repr(field_name)):
        load_settings(environ={var: value})


def test_config_error_is_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize("overrides, field_name", [
    ({"test_size": 0}, "test_size"),
    ({"test_size": 1.0}, "test_size"),
    ({"test_size": -0.2}, "test_size"),
    ({"min_rows": 1}, "min_rows"),
    ({"prediction_batch_size": 0}, "prediction_batch_size"),
    ({"monitoring_min_samples": 1}, "monitoring_min_samples"),
    ({"target": "x"}, "target"),
    ({"retrain_cooldown_minutes": -1}, "retrain_cooldown_minutes"),
    ({"training_lease_minutes": -0.5}, "training_lease_minutes"),
    ({"monitoring_lookback_hours": -24}, "monitoring_lookback_hours"),
])
def test_validate_settings_rejects_out_of_range(overrides: dict, field_name: str) -> None:
    with pytest.raises(ConfigError, match=repr(field_name)):
        load_settings(overrides, environ={})
    # validate_settings on its own (with_overrides does no range checks) says the same
    with pytest.raises(ConfigError, match=repr(field_name)):
        validate_settings(Settings().with_overrides(overrides))


def test_validate_settings_accepts_defaults() -> None:
    validate_settings(Settings())
