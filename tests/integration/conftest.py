"""Integration fixtures: a champion trained and promoted by the pure ``ct_training`` steps into a
real local MLflow store (SQLite tracking URI), without Airflow.

``mlflow.set_tracking_uri`` is process-global, so a module gets one data dir (``trained_champion``)
and its tests use fresh feature stores (``fresh_store``) against that one MLflow store.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from ct_operators.config import PROJECT_ROOT, Settings, load_settings

SEED_CSV = PROJECT_ROOT / "include" / "data" / "point_samples.csv"


@dataclass
class TrainedChampion:
    settings: Settings
    store: Any  # the SqliteFeatureStore it was trained from (seed data)
    version: str
    mlflow_run_id: str
    promoted_at: datetime

    @property
    def model_uri(self) -> str:
        return f"models:/{self.settings.registered_model_name}/{self.version}"

    def client(self):
        from ct_operators import registry

        return registry.connect(self.settings)


@pytest.fixture(scope="module")
def trained_champion(tmp_path_factory: pytest.TempPathFactory) -> TrainedChampion:
    """Seed data -> extract -> validate -> prepare -> train -> validate_model -> promote (evaluate skipped)."""
    from ct_operators import registry
    from ct_operators.events import RunIds
    from ct_operators.store.sqlite import SqliteFeatureStore
    from ct_operators.store.types import TimeWindow
    from ct_operators.training import steps

    settings = load_settings({"data_dir": str(tmp_path_factory.mktemp("ct_loop"))}, environ={})
    store = SqliteFeatureStore(settings.sqlite_path)
    store.init_schema()
    store.load_seed_csv(SEED_CSV)
    ids = RunIds(dag_id="ct_training", run_id="t1")
    extracted = steps.extract(settings, store, ids, TimeWindow())
    prepared = steps.prepare(settings, ids, steps.validate_data(settings, ids, extracted))
    trained = steps.train(settings, ids, prepared)
    promoted = steps.promote(settings, store, ids, steps.validate_model(settings, ids, prepared, trained))
    assert promoted["promoted"], promoted
    client = registry.connect(settings)
    # created here so its artifacts live under this module's data dir
    registry.ensure_experiment(client, settings, settings.monitoring_experiment)
    tag = client.get_model_version(settings.registered_model_name, promoted["model_version"]).tags[steps.PROMOTED_AT_TAG]
    return TrainedChampion(settings=settings, store=store, version=promoted["model_version"],
                           mlflow_run_id=trained["mlflow_run_id"], promoted_at=datetime.fromisoformat(tag))


@pytest.fixture
def fresh_store(tmp_path: Path):
    """An empty, initialised feature store of the test's own (no serving pointer, no training runs)."""
    from ct_operators.store.sqlite import SqliteFeatureStore

    store = SqliteFeatureStore(tmp_path / "feature_store.db")
    store.init_schema()
    return store
