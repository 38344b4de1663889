"""One settings object for the whole pipeline: defaults <- environment (CT_*) <- DAG Params.

Every path is derived from ``data_dir`` so all runtime state lives under one folder.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class PermanentError(ValueError):
    """A failure that a retry cannot fix (bad configuration or data): operators fail without retrying."""


class ConfigError(PermanentError):
    """A configuration value is malformed; the message names the field."""


def _default_data_dir() -> Path:
    return PROJECT_ROOT / "data"


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=_default_data_dir)
    feature_store_conn_id: str = "ct_feature_store"
    mlflow_tracking_uri: str = ""  # empty: a SQLite store under data_dir
    training_experiment: str = "ct_training"
    monitoring_experiment: str = "ct_monitoring"
    registered_model_name: str = "ct_point_regressor"
    champion_alias: str = "champion"
    previous_alias: str = "previous"
    # use case
    features: tuple[str, ...] = ("x",)
    target: str = "y"
    preprocessor_class: str = "sklearn.preprocessing.StandardScaler"  # "" for none
    model_class: str = "sklearn.linear_model.LinearRegression"
    model_params: Mapping[str, Any] = field(default_factory=lambda: {"fit_intercept": True})
    # training
    seed: int = 42
    test_size: float = 0.2
    min_rows: int = 10
    max_missing_fraction: float = 0.0
    iqr_factor: float = 1.5
    outliers_are_errors: bool = False
    r2_floor: float = 0.0
    require_approval: bool = False
    # where train/evaluate run: "process" (the Airflow worker) or "docker" (DockerOperator, same image)
    execution_mode: str = "process"
    docker_image: str = "ct-pipeline/airflow:3.3.2"
    docker_url: str = "tcp://docker-socket-proxy:2375"
    docker_network: str = ""
    docker_data_volume: str = "ct-pipeline_airflow-data"
    # serving
    prediction_batch_size: int = 10_000
    prediction_schedule: str = "*/10 * * * *"  # "" or "none": manual runs only
    # monitoring
    monitoring_schedule: str = "0 * * * *"
    r2_threshold: float = 0.2
    monitoring_min_samples: int = 10
    monitoring_lookback_hours: float = 24 * 7
    retrain_cooldown_minutes: float = 60.0
    training_lease_minutes: float = 120.0

    def schedule(self, cron: str) -> str | None:
        """A cron setting as a DAG schedule: "" or "none" mean manual runs only."""
        return None if cron.strip().lower() in {"", "none", "null"} else cron

    # derived locations -------------------------------------------------------------
    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.data_dir / 'mlflow' / 'mlflow.db'}"

    @property
    def artifact_root(self) -> Path:
        return self.data_dir / "mlflow" / "artifacts"

    @property
    def staging_dir(self) -> Path:
        return self.data_dir / "staging"

    @property
    def model_cache_dir(self) -> Path:
        return self.data_dir / "model_cache"

    @property
    def audit_log(self) -> Path:
        return self.data_dir / "audit" / "events.jsonl"

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "feature_store.db"

    def with_overrides(self, overrides: Mapping[str, Any] | None) -> "Settings":
        """Apply DAG Params (or any mapping); keys that are not settings are ignored."""
        known = {f.name: f for f in fields(self)}
        changes = {
            k: _coerce(known[k], v) for k, v in (overrides or {}).items()
            if k in known and v is not None
        }
        return dataclasses.replace(self, **changes)


def _coerce(f: dataclasses.Field, value: Any) -> Any:
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.lower() not in {"1", "0", "true", "false", "yes", "no"}:
                    raise ValueError("expected true/false")
                return value.lower() in {"1", "true", "yes"}
            return bool(value)
        if isinstance(default, Path):
            return Path(value).expanduser().resolve()
        if isinstance(default, tuple):
            items = json.loads(value) if isinstance(value, str) and value.startswith("[") else value
            items = items.split(",") if isinstance(items, str) else items
            out = tuple(str(i).strip() for i in items if str(i).strip())
            if not out:
                raise ValueError("expected at least one name")
            return out
        if isinstance(default, Mapping):
            out = json.loads(value) if isinstance(value, str) else dict(value)
            if not isinstance(out, dict):
                raise ValueError("expected a JSON object")
            return out
        if isinstance(default, float):
            number = float(value)
            if number != number:
                raise ValueError("NaN is not allowed")
            return number
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError("expected an integer")
            return int(value)
        return str(value)
    except (TypeError, ValueError, json.JSONDecodeError) as exc:
        raise ConfigError(f"setting {f.name!r}: cannot use {value!r} ({exc})") from exc


def load_settings(overrides: Mapping[str, Any] | None = None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Defaults, then ``CT_<NAME>`` environment variables, then ``overrides`` (DAG Params)."""
    env = os.environ if environ is None else environ
    from_env = {f.name: env[f"CT_{f.name.upper()}"] for f in fields(Settings) if f"CT_{f.name.upper()}" in env}
    settings = Settings().with_overrides(from_env).with_overrides(overrides)
    validate_settings(settings)
    return settings


def validate_settings(s: Settings) -> None:
    if not 0.0 < s.test_size < 1.0:
        raise ConfigError(f"setting 'test_size' must be in (0, 1), got {s.test_size}")
    if s.min_rows < 2:
        raise ConfigError(f"setting 'min_rows' must be at least 2, got {s.min_rows}")
    if s.prediction_batch_size < 1:
        raise ConfigError(f"setting 'prediction_batch_size' must be positive, got {s.prediction_batch_size}")
    if s.monitoring_min_samples < 2:
        raise ConfigError("setting 'monitoring_min_samples' must be at least 2 (R² needs two points)")
    if s.execution_mode not in {"process", "docker"}:
        raise ConfigError(f"setting 'execution_mode' must be 'process' or 'docker', got {s.execution_mode!r}")
    if s.target in s.features:
        raise ConfigError(f"setting 'target' ({s.target!r}) must not also be a feature")
    for name in ("retrain_cooldown_minutes", "training_lease_minutes", "monitoring_lookback_hours"):
        if getattr(s, name) < 0:
            raise ConfigError(f"setting {name!r} must not be negative")
