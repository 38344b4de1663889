"""Shared fixtures: settings rooted in a temporary data dir, and an initialised SQLite feature store.

Kept generic on purpose: any backend's tests may use ``settings``; ``sqlite_store`` is the embedded default.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from ct_operators.config import PROJECT_ROOT, Settings, load_settings

SEED_CSV = PROJECT_ROOT / "include" / "data" / "point_samples.csv"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Defaults with every path under ``tmp_path``; the process environment (CT_*) is ignored."""
    return load_settings({"data_dir": str(tmp_path)}, environ={})


@pytest.fixture
def sqlite_store(settings: Settings):
    """A SqliteFeatureStore at ``settings.sqlite_path`` with its schema created (no data loaded)."""
    from ct_operators.store.sqlite import SqliteFeatureStore

    store = SqliteFeatureStore(settings.sqlite_path)
    store.init_schema()
    return store


@pytest.fixture
def seed_csv() -> Path:
    """The project's seed data file."""
    return SEED_CSV
