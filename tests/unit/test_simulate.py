"""Drift simulator: DriftSpec validation, reproducible draws, inserts into a real SQLite store, and the CLI."""
from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from ct_operators.config import PROJECT_ROOT, Settings
from ct_operators.events import read_events
from ct_operators.simulate import SEED_LIKE, DriftSpec, insert_simulated, simulate_points
from ct_operators.store.sqlite import SqliteFeatureStore

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


# -- DriftSpec validation ---------------------------------------------------------------

@pytest.mark.parametrize(("overrides", "field_name"), [
    ({"points": 0}, "points"),
    ({"points": -1}, "points"),
    ({"points": 1_000_001}, "points"),
    ({"points": 2.0}, "points"),
    ({"points": True}, "points"),
    ({"points": "5"}, "points"),
    ({"noise": -0.1}, "noise"),
    ({"x_min": 10.0, "x_max": 10.0}, "x_min"),
    ({"x_min": 11.0, "x_max": 10.0}, "x_min"),
    ({"slope": float("nan")}, "slope"),
    ({"offset": float("inf")}, "offset"),
    ({"noise": float("nan")}, "noise"),
    ({"slope": True}, "slope"),
    ({"x_max": "125"}, "x_max"),
    ({"seed": 1.5}, "seed"),
    ({"seed": False}, "seed"),
    ({"seed": -1}, "seed"),  # numpy would refuse it later without naming the field
    ({"x_min": -1e308, "x_max": 1e308}, "x_min"),  # the range overflows to inf
    ({"label": "x" * 101}, "label"),
    ({"label": 5}, "label"),
])
def test_drift_spec_rejects_bad_values_naming_the_field(overrides: dict, field_name: str) -> None:
    with pytest.raises(ValueError, match=f"'{field_name}'"):
        DriftSpec(**overrides)


def test_drift_spec_accepts_defaults_and_edges() -> None:
    DriftSpec()
    DriftSpec(points=1, noise=0.0, x_min=-1.0, x_max=-0.5, seed=0, label="")
    DriftSpec(points=1_000_000, slope=0, offset=-5)  # ints are numbers too
    assert DriftSpec(**SEED_LIKE).slope == SEED_LIKE["slope"]


def test_from_mapping_ignores_unknown_keys_and_none() -> None:
    spec = DriftSpec.from_mapping({"points": 4, "slope": 3.0, "seed": None, "r2_threshold": 0.5, "unknown": 1})
    assert spec == DriftSpec(points=4, slope=3.0)
    with pytest.raises(ValueError, match="'points'"):
        DriftSpec.from_mapping({"points": 0})


# -- drawing points ---------------------------------------------------------------------

def test_same_seed_same_points_other_seed_other_points() -> None:
    spec = DriftSpec(points=50, seed=123)
    first, second = simulate_points(spec, NOW), simulate_points(spec, NOW)
    assert [(s.x, s.y) for s in first] == [(s.x, s.y) for s in second]
    other = simulate_points(DriftSpec(points=50, seed=124), NOW)
    assert [(s.x, s.y) for s in other] != [(s.x, s.y) for s in first]


def test_points_follow_the_line_within_the_range() -> None:
    spec = DriftSpec(points=200, slope=-2.5, offset=7.0, noise=0.0, x_min=3.0, x_max=4.0, seed=1, label="exact")
    samples = simulate_points(spec, NOW)
    assert len(samples) == 200
    for s in samples:
        assert 3.0 <= s.x < 4.0
        assert s.y == pytest.approx(-2.5 * s.x + 7.0)
        assert s.label == "exact" and s.event_ts == NOW


def test_noise_has_the_requested_spread() -> None:
    spec = DriftSpec(points=5000, slope=1.0, offset=0.0, noise=4.0, seed=2)
    residuals = np.array([s.y - s.x for s in simulate_points(spec, NOW)])
    assert abs(residuals.mean()) < 0.5
    assert 3.5 < residuals.std() < 4.5


# -- inserting into the store -----------------------------------------------------------

def test_insert_simulated_counts_and_audits(settings: Settings, sqlite_store: SqliteFeatureStore) -> None:
    before = sqlite_store.count_samples()
    result = insert_simulated(settings, sqlite_store, DriftSpec(points=7, slope=3.0, seed=5, label="drift-a"),
                              {"dag_id": "ct_simulate_drift", "airflow_run_id": "manual__1"})
    assert result["inserted"] == 7
    assert sqlite_store.count_samples() == before + 7
    frame = sqlite_store.fetch_samples()
    assert (frame["label"] == "drift-a").sum() == 7
    assert frame["y"].notna().all()
    assert datetime.fromisoformat(result["event_ts"]).utcoffset().total_seconds() == 0
    assert result["spec"]["slope"] == 3.0 and result["spec"]["points"] == 7
    events = read_events(settings.audit_log, "simulated")
    assert len(events) == 1
    assert events[0]["inserted"] == 7 and events[0]["airflow_run_id"] == "manual__1"
    assert events[0]["spec"]["label"] == "drift-a"
    insert_simulated(settings, sqlite_store, DriftSpec(points=3, seed=5))
    assert sqlite_store.count_samples() == before + 10


def test_insert_simulated_stores_the_drawn_values(settings: Settings, sqlite_store: SqliteFeatureStore) -> None:
    spec = DriftSpec(points=5, seed=9, label="exact")
    insert_simulated(settings, sqlite_store, spec)
    expected = simulate_points(spec, NOW)
    stored = sqlite_store.fetch_samples().sort_values("id")
    assert stored["x"].tolist() == pytest.approx([s.x for s in expected])
    assert stored["y"].tolist() == pytest.approx([s.y for s in expected])


# -- the CLI ----------------------------------------------------------------------------

def _cli_env(data_dir: Path, db: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CT_", "MLFLOW_"))}
    env.update({
        "CT_DATA_DIR": str(data_dir),
        "AIRFLOW_CONN_CT_FEATURE_STORE": json.dumps({"conn_type": "sqlite", "host": str(db)}),
        "PYTHONPATH": str(PROJECT_ROOT / "plugins"),
    })
    return env


@pytest.fixture
def cli_store(tmp_path: Path) -> tuple[SqliteFeatureStore, dict[str, str]]:
    """A store at a path other than the data dir's default, so the CLI must follow the connection variable."""
    db = tmp_path / "elsewhere" / "cli_store.db"
    store = SqliteFeatureStore(db)
    store.init_schema()
    return store, _cli_env(tmp_path / "data", db)


def _run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ct_operators", *args], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=300)


def test_cli_simulate_inserts_points(cli_store, tmp_path: Path) -> None:
    store, env = cli_store
    proc = _run_cli(env, "simulate", "--points", "5", "--slope", "2", "--seed", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["inserted"] == 5 and result["spec"]["slope"] == 2.0 and result["spec"]["seed"] == 1
    assert store.count_samples() == 5
    expected = simulate_points(DriftSpec(points=5, slope=2.0, seed=1), NOW)
    assert sorted(store.fetch_samples()["x"]) == pytest.approx(sorted(s.x for s in expected))
    assert not (tmp_path / "data" / "feature_store.db").exists()  # the connection variable won
    events = read_events(tmp_path / "data" / "audit" / "events.jsonl", "simulated")
    assert [(e["inserted"], e["source"]) for e in events] == [(5, "cli")]


@pytest.mark.parametrize(("args", "field_name"), [
    (["--points", "-1"], "points"),
    (["--points", "0"], "points"),
    (["--noise", "-2"], "noise"),
    (["--x-min", "5", "--x-max", "1"], "x_min"),
    (["--slope", "nan"], "slope"),
    (["--seed", "-3"], "seed"),
])
def test_cli_simulate_bad_value_exits_2_naming_the_field(cli_store, args: list[str], field_name: str) -> None:
    store, env = cli_store
    proc = _run_cli(env, "simulate", *args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert f"'{field_name}'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert store.count_samples() == 0


def test_cli_simulate_non_number_is_an_argparse_error(cli_store) -> None:
    store, env = cli_store
    proc = _run_cli(env, "simulate", "--points", "five")
    assert proc.returncode == 2
    assert "--points" in proc.stderr
    assert store.count_samples() == 0


def test_cli_simulate_injection_label_is_stored_as_data(cli_store) -> None:
    store, env = cli_store
    label = "x'); DROP TABLE point_samples;--"
    proc = _run_cli(env, "simulate", "--points", "3", "--seed", "4", "--label", label)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert store.count_samples() == 3
    assert store.fetch_samples()["label"].tolist() == [label] * 3
    with closing(sqlite3.connect(store.path)) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"point_samples", "predictions", "ml_config", "training_runs", "retrain_triggers"} <= tables


def test_simulated_values_are_finite(settings: Settings, sqlite_store: SqliteFeatureStore) -> None:
    insert_simulated(settings, sqlite_store, DriftSpec(points=20, slope=1e6, offset=-1e6, noise=1e3, seed=3))
    frame = sqlite_store.fetch_samples()
    assert all(math.isfinite(v) for v in frame["y"])
