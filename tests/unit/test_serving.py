"""Prediction service against a real SQLite feature store and a real local MLflow store (SQLite tracking URI).

One MLflow store per module (``mlflow.set_tracking_uri`` is process-global); each test gets its own
feature store, model cache and audit log under ``tmp_path``. Models are exact lines fitted with
scikit-learn and registered with ``mlflow.sklearn.log_model``, so every prediction can be checked.
"""
from __future__ import annotations

import dataclasses
import shutil
import sqlite3
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ct_operators import registry
from ct_operators.config import Settings, load_settings
from ct_operators.events import read_events, utcnow
from ct_operators.serving import MANIFEST, ModelCache, NoChampionError, PredictionService
from ct_operators.store.sqlite import SqliteFeatureStore
from ct_operators.store.types import Sample, TimeWindow, from_db_ts

MODEL = "ct_point_regressor"
V1 = (2.0, 1.0)  # slope, intercept of the default model's version 1


def register_line(settings: Settings, slope: float, intercept: float, name: str) -> registry.ModelRef:
    """Register a LinearRegression that reproduces y = slope·x + intercept exactly; returns its version."""
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    client = registry.connect(settings)
    X = pd.DataFrame({"x": np.linspace(0.0, 100.0, 21)})
    model = LinearRegression().fit(X, slope * X["x"] + intercept)
    experiment_id = registry.ensure_experiment(client, settings, settings.training_experiment)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        info = mlflow.sklearn.log_model(model, name="model", registered_model_name=name,
                                        signature=infer_signature(X, model.predict(X)),
                                        pip_requirements=["scikit-learn", "pandas", "numpy"])
    return registry.ModelRef(name, str(info.registered_model_version), run.info.run_id)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, registry.ModelRef]:
    """The module's MLflow store with version 1 of the default model as champion."""
    settings = load_settings({"data_dir": str(tmp_path_factory.mktemp("serving_mlflow"))}, environ={})
    v1 = register_line(settings, *V1, MODEL)
    registry.set_champion(registry.connect(settings), settings, v1.version)
    return settings, v1


@pytest.fixture
def s(base, tmp_path: Path) -> Settings:
    """Per-test data dir (store, cache, audit log) on the module's MLflow store."""
    return dataclasses.replace(base[0], data_dir=tmp_path, mlflow_tracking_uri=base[0].tracking_uri)


@pytest.fixture
def v1(base) -> registry.ModelRef:
    return base[1]


@pytest.fixture
def store(s: Settings, v1: registry.ModelRef) -> SqliteFeatureStore:
    store = SqliteFeatureStore(s.sqlite_path)
    store.init_schema()
    store.set_serving_pointer(v1.uri)
    return store


def add(store: SqliteFeatureStore, xs, ts: datetime | None = None, y: float | None = 0.0) -> list[int]:
    """Insert samples; returns their ids (in insertion order)."""
    before = set(store.fetch_samples()["id"])
    store.insert_samples([Sample(x=x, y=y, label="t", event_ts=ts) for x in xs])
    return sorted(set(store.fetch_samples()["id"]) - before)


def prediction_rows(store: SqliteFeatureStore) -> list[dict]:
    with closing(sqlite3.connect(store.path)) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM predictions ORDER BY sample_id, model_version")]


def x_of(store: SqliteFeatureStore) -> dict[int, float]:
    frame = store.fetch_samples()
    return dict(zip(frame["id"].astype(int), frame["x"]))


# -- score_unscored -----------------------------------------------------------------------

def test_score_unscored_writes_one_prediction_per_sample(s: Settings, store: SqliteFeatureStore,
                                                         v1: registry.ModelRef) -> None:
    ids = add(store, [0.0, 1.5, 10.0, 42.0, 99.0, -3.0, 7.25])
    before = utcnow()
    summary = PredictionService(s, store).score_unscored()
    after = utcnow()
    assert (summary.scored, summary.written, summary.skipped_missing_features) == (7, 7, 0)
    assert (summary.model_name, summary.model_version) == (MODEL, "1")
    rows = prediction_rows(store)
    assert [r["sample_id"] for r in rows] == ids
    xs = x_of(store)
    for r in rows:
        assert r["model_name"] == MODEL and r["model_version"] == "1"
        assert r["mlflow_run_id"] == v1.run_id
        assert r["inference_ms"] > 0
        assert r["predicted"] == pytest.approx(V1[0] * xs[r["sample_id"]] + V1[1], abs=1e-6)
        at = from_db_ts(r["predicted_at"])  # stored as naive UTC text
        assert before - timedelta(seconds=1) <= at <= after + timedelta(seconds=1)
    events = read_events(s.audit_log, "predicted")
    assert [(e["written"], e["model_version"], e["model_source"]) for e in events] == [(7, "1", "mlflow")]


def test_second_call_writes_nothing(s: Settings, store: SqliteFeatureStore) -> None:
    add(store, np.linspace(1, 50, 12))
    service = PredictionService(s, store)
    assert service.score_unscored().written == 12
    again = service.score_unscored()
    assert (again.scored, again.written, again.batches) == (0, 0, 0)
    assert store.count_predictions() == 12
    # a new service (fresh process) does not rescore either
    assert PredictionService(s, store).score_unscored().written == 0
    assert store.count_predictions() == 12
    # only new samples are scored next time
    new = add(store, [3.0, 4.0])
    third = service.score_unscored()
    assert third.written == 2
    assert sorted(r["sample_id"] for r in prediction_rows(store))[-2:] == new


def test_batches_give_the_same_result_as_one_batch(s: Settings, tmp_path: Path, v1) -> None:
    xs = list(np.linspace(-20, 120, 23))
    results = {}
    for size in (3, 10_000):
        store = SqliteFeatureStore(tmp_path / f"fs_{size}.db")
        store.init_schema()
        store.set_serving_pointer(v1.uri)
        add(store, xs)
        summary = PredictionService(s, store).score_unscored(batch_size=size)
        assert summary.scored == summary.written == 23
        assert summary.batches == (8 if size == 3 else 1)
        results[size] = [(r["sample_id"], round(r["predicted"], 9)) for r in prediction_rows(store)]
    assert results[3] == results[10_000]
    assert len({sid for sid, _ in results[3]}) == 23


def test_max_rows_limits_one_call(s: Settings, store: SqliteFeatureStore) -> None:
    add(store, range(10))
    service = PredictionService(s, store)
    assert service.score_unscored(batch_size=4, max_rows=6).scored == 6
    assert store.count_predictions() == 6
    assert service.score_unscored(batch_size=4).scored == 4
    assert store.count_predictions() == 10


def test_missing_features_are_skipped_and_counted(s: Settings, store: SqliteFeatureStore) -> None:
    good = add(store, [1.0, 2.0])
    missing = add(store, [None, None, None])
    good += add(store, [3.0])
    summary = PredictionService(s, store).score_unscored(batch_size=2)
    assert summary.skipped_missing_features == 3
    assert summary.scored == summary.written == 3
    assert [r["sample_id"] for r in prediction_rows(store)] == good
    assert not set(missing) & {r["sample_id"] for r in prediction_rows(store)}


def test_only_missing_features_writes_nothing(s: Settings, store: SqliteFeatureStore) -> None:
    add(store, [None, None])
    summary = PredictionService(s, store).score_unscored()
    assert (summary.scored, summary.written, summary.skipped_missing_features) == (0, 0, 2)
    assert store.count_predictions() == 0


# -- typed selectors ----------------------------------------------------------------------

def test_score_ids_scores_only_those(s: Settings, store: SqliteFeatureStore) -> None:
    ids = add(store, [5.0, 6.0, 7.0, 8.0])
    service = PredictionService(s, store)
    summary = service.score_ids([ids[1], np.int64(ids[3])])
    assert summary.written == 2
    assert [r["sample_id"] for r in prediction_rows(store)] == [ids[1], ids[3]]
    assert service.score_ids([ids[1]]).written == 0  # already scored by this version
    assert service.score_ids([10_000]).scored == 0  # unknown id: nothing to score
    assert store.count_predictions() == 2


@pytest.mark.parametrize("bad", [["1"], [1.0], [True], [None], [1, "2; DROP TABLE predictions"]])
def test_score_ids_rejects_non_integers(s: Settings, store: SqliteFeatureStore, bad: list) -> None:
    add(store, [1.0, 2.0])
    with pytest.raises(TypeError, match="integers"):
        PredictionService(s, store).score_ids(bad)
    assert store.count_predictions() == 0


def test_score_window_scores_only_the_window(s: Settings, store: SqliteFeatureStore) -> None:
    jan, feb, mar = (datetime(2026, m, 15, tzinfo=timezone.utc) for m in (1, 2, 3))
    add(store, [1.0], jan)
    inside = add(store, [2.0, 3.0], feb)
    add(store, [4.0], mar)
    window = TimeWindow(start=datetime(2026, 2, 1, tzinfo=timezone.utc), end=datetime(2026, 3, 1, tzinfo=timezone.utc))
    summary = PredictionService(s, store).score_window(window)
    assert summary.written == 2
    assert [r["sample_id"] for r in prediction_rows(store)] == inside


def test_score_window_with_offset_bounds(s: Settings, store: SqliteFeatureStore) -> None:
    add(store, [1.0], datetime(2026, 2, 1, 1, 30, tzinfo=timezone.utc))
    plus2 = timezone(timedelta(hours=2))
    # 03:00+02:00 == 01:00 UTC, 04:00+02:00 == 02:00 UTC
    window = TimeWindow(start=datetime(2026, 2, 1, 3, tzinfo=plus2), end=datetime(2026, 2, 1, 4, tzinfo=plus2))
    assert PredictionService(s, store).score_window(window).written == 1


@pytest.mark.parametrize("kwargs", [
    {"start": datetime(2026, 2, 1)},
    {"end": datetime(2026, 2, 1)},
    {"start": datetime(2026, 2, 1, tzinfo=timezone.utc), "end": datetime(2026, 2, 1, tzinfo=timezone.utc)},
])
def test_bad_windows_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        TimeWindow(**kwargs)


# -- no champion --------------------------------------------------------------------------

def test_no_champion_raises_a_clear_error(s: Settings, tmp_path: Path) -> None:
    settings = dataclasses.replace(s, registered_model_name="never_registered")
    store = SqliteFeatureStore(tmp_path / "empty.db")
    store.init_schema()
    add(store, [1.0, 2.0])
    service = PredictionService(settings, store)
    with pytest.raises(NoChampionError, match="never_registered") as info:
        service.score_unscored()
    assert "ct_training" in str(info.value)
    assert store.count_predictions() == 0
    assert store.get_serving_pointer() is None


def test_model_without_champion_alias_raises(s: Settings, tmp_path: Path) -> None:
    register_line(s, 1.0, 0.0, "ct_aliasless")  # registered, never promoted
    settings = dataclasses.replace(s, registered_model_name="ct_aliasless")
    store = SqliteFeatureStore(tmp_path / "aliasless.db")
    store.init_schema()
    with pytest.raises(NoChampionError, match="ct_aliasless"):
        PredictionService(settings, store).champion()


# -- the model cache ----------------------------------------------------------------------

def test_cache_is_filled_from_mlflow_then_used(s: Settings, store: SqliteFeatureStore, v1) -> None:
    service = PredictionService(s, store)
    model, ref, source = service.load_champion()
    assert source == "mlflow"
    assert (ref.name, ref.version, ref.run_id) == (MODEL, "1", v1.run_id)
    assert service.cache.is_valid(MODEL, "1")
    assert (s.model_cache_dir / MODEL / "1" / MANIFEST).exists()
    assert service.load_champion()[2] == "memory"
    # another process (fresh cache object, same folder) reads the local copy
    other = PredictionService(s, store)
    assert other.load_champion()[2] == "cache"
    assert other.load_champion()[2] == "memory"


def test_deleted_cache_is_refilled_from_mlflow(s: Settings, store: SqliteFeatureStore) -> None:
    add(store, [1.0, 2.0])
    service = PredictionService(s, store)
    assert service.load_champion()[2] == "mlflow"
    shutil.rmtree(s.model_cache_dir)
    assert not service.cache.is_valid(MODEL, "1")
    summary = service.score_unscored()
    assert summary.model_source == "mlflow"
    assert summary.written == 2
    assert service.cache.is_valid(MODEL, "1")


def _model_file(folder: Path) -> Path:
    files = [p for p in folder.iterdir() if p.name.startswith("model.")]
    assert len(files) == 1, sorted(p.name for p in folder.iterdir())
    return files[0]


def test_corrupt_cached_model_is_detected_and_refilled(s: Settings, store: SqliteFeatureStore) -> None:
    service = PredictionService(s, store)
    service.load_champion()
    folder = service.cache.folder(MODEL, "1")
    model_file = _model_file(folder)
    original = model_file.read_bytes()
    model_file.write_bytes(b"not a model at all" + original[18:])
    assert not service.cache.is_valid(MODEL, "1")
    _, ref, source = service.load_champion()
    assert source == "mlflow"  # not served from memory although the key is loaded
    assert ref.version == "1"
    assert service.cache.is_valid(MODEL, "1")
    assert model_file.read_bytes() == original
    ids = add(store, [10.0])
    service.score_unscored()
    assert prediction_rows(store)[0]["sample_id"] == ids[0]
    assert prediction_rows(store)[0]["predicted"] == pytest.approx(V1[0] * 10.0 + V1[1], abs=1e-6)


@pytest.mark.parametrize("damage", ["extra_file", "missing_file", "bad_manifest", "no_manifest"])
def test_cache_validity_checks(s: Settings, store: SqliteFeatureStore, damage: str) -> None:
    cache = ModelCache(s.model_cache_dir)
    PredictionService(s, store, cache=cache).load_champion()
    folder = cache.folder(MODEL, "1")
    assert cache.is_valid(MODEL, "1")
    if damage == "extra_file":
        (folder / "stray.txt").write_text("x")
    elif damage == "missing_file":
        (folder / "MLmodel").unlink()
    elif damage == "bad_manifest":
        (folder / MANIFEST).write_text("{not json")
    else:
        (folder / MANIFEST).unlink()
    assert not cache.is_valid(MODEL, "1")
    assert PredictionService(s, store, cache=cache).load_champion()[2] == "mlflow"
    assert cache.is_valid(MODEL, "1")


# -- the serving pointer ------------------------------------------------------------------

def test_missing_pointer_is_repaired_from_the_alias(s: Settings, tmp_path: Path, v1) -> None:
    store = SqliteFeatureStore(tmp_path / "no_pointer.db")
    store.init_schema()
    add(store, [2.0])
    assert store.get_serving_pointer() is None
    summary = PredictionService(s, store).score_unscored()
    assert (summary.model_version, summary.written) == ("1", 1)
    assert store.get_serving_pointer() == v1.uri
    assert [e["serving_pointer"] for e in read_events(s.audit_log, "pointer_repaired")] == [v1.uri]
    PredictionService(s, store).score_unscored()  # pointer present now: nothing to repair
    assert len(read_events(s.audit_log, "pointer_repaired")) == 1


def test_malformed_pointer_is_refused(s: Settings, store: SqliteFeatureStore) -> None:
    store.set_serving_pointer("runs:/abc/model")
    with pytest.raises(ValueError, match="models:/"):
        PredictionService(s, store).score_unscored()


def test_new_champion_is_loaded_when_the_pointer_changes(s: Settings, store: SqliteFeatureStore) -> None:
    name = "ct_swap_model"
    settings = dataclasses.replace(s, registered_model_name=name)
    first = register_line(settings, 2.0, 1.0, name)
    second = register_line(settings, -1.0, 50.0, name)
    client = registry.connect(settings)
    registry.set_champion(client, settings, first.version)
    registry.sync_serving_pointer(client, settings, store)
    assert store.get_serving_pointer() == first.uri
    ids = add(store, [1.0, 20.0, 30.0])
    service = PredictionService(settings, store)
    assert service.score_unscored().model_version == first.version

    registry.set_champion(client, settings, second.version)  # promotion: alias, then pointer
    registry.sync_serving_pointer(client, settings, store)
    summary = service.score_unscored()
    assert (summary.model_version, summary.model_source, summary.written) == (second.version, "mlflow", 3)
    rows = [r for r in prediction_rows(store) if r["model_version"] == second.version]
    xs = x_of(store)
    assert [r["sample_id"] for r in rows] == ids
    for r in rows:
        assert r["mlflow_run_id"] == second.run_id
        assert r["predicted"] == pytest.approx(-xs[r["sample_id"]] + 50.0, abs=1e-6)
    assert service.score_unscored().written == 0
    assert store.count_predictions() == 6  # each version scored each sample once
    assert registry.version_by_alias(client, name, settings.previous_alias).version == first.version


# -- concurrent cache fills (several workers or a worker and the CLI start on a cold cache) -------

def test_fill_keeps_a_valid_copy_installed_meanwhile(s: Settings, store: SqliteFeatureStore, v1) -> None:
    cache = ModelCache(s.model_cache_dir)
    folder = cache.fill(MODEL, "1", v1.run_id)
    inode = folder.stat().st_ino
    cache._download(MODEL, "1", v1.run_id, folder)  # a second process finishing its download later
    assert folder.stat().st_ino == inode, "a valid cached copy (possibly being loaded) was replaced"
    assert cache.is_valid(MODEL, "1")
    assert [p.name for p in folder.parent.iterdir()] == ["1"]  # no temp or trash folders left behind


def test_fill_replaces_an_invalid_copy_without_leftovers(s: Settings, v1) -> None:
    cache = ModelCache(s.model_cache_dir)
    folder = cache.fill(MODEL, "1", v1.run_id)
    (folder / "MLmodel").write_text("garbage")
    assert not cache.is_valid(MODEL, "1")
    cache.fill(MODEL, "1", v1.run_id)
    assert cache.is_valid(MODEL, "1")
    assert [p.name for p in folder.parent.iterdir()] == ["1"]


def test_a_folder_swapped_away_while_loading_is_read_again(s: Settings, v1, monkeypatch) -> None:
    """Another process moves the cached copy aside (it judged it corrupt) just as this one reads it."""
    import mlflow

    cache = ModelCache(s.model_cache_dir)
    folder = cache.fill(MODEL, "1", v1.run_id)
    real_load = mlflow.pyfunc.load_model
    swaps: list[str] = []

    def load_while_another_process_swaps(path: str):
        if not swaps:
            swaps.append(path)
            folder.rename(folder.parent / ".1-old-by-another-process")
        return real_load(path)

    monkeypatch.setattr(mlflow.pyfunc, "load_model", load_while_another_process_swaps)
    model, source = cache.load(MODEL, "1", lambda: v1.run_id)
    assert swaps and source == "mlflow"  # the first read failed on the vanished folder; refilled, read again
    assert float(model.predict(pd.DataFrame({"x": [1.0]}))[0]) == pytest.approx(
        float(real_load(str(folder)).predict(pd.DataFrame({"x": [1.0]}))[0]))
    assert cache.is_valid(MODEL, "1")


def test_concurrent_cold_loads_all_succeed(s: Settings, store: SqliteFeatureStore) -> None:
    import threading

    outcomes: list[str] = []
    for _ in range(3):
        shutil.rmtree(s.model_cache_dir, ignore_errors=True)
        barrier = threading.Barrier(6)

        def load() -> None:
            barrier.wait()
            try:
                _, ref, _ = PredictionService(s, store, cache=ModelCache(s.model_cache_dir)).load_champion()
                outcomes.append(f"ok v{ref.version}")
            except Exception as exc:  # collected: the assertion below shows every failure
                outcomes.append(f"{type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=load) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert outcomes == ["ok v1"] * 18, [o for o in outcomes if o != "ok v1"]
    assert ModelCache(s.model_cache_dir).is_valid(MODEL, "1")


# -- the CLI --------------------------------------------------------------------------------

def _cli(s: Settings, store: SqliteFeatureStore, *args: str):
    import json
    import os
    import subprocess
    import sys

    from ct_operators.config import PROJECT_ROOT

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CT_", "MLFLOW_"))}
    env.update({"CT_DATA_DIR": str(s.data_dir), "CT_MLFLOW_TRACKING_URI": s.tracking_uri,
                "CT_REGISTERED_MODEL_NAME": s.registered_model_name,
                "AIRFLOW_CONN_CT_FEATURE_STORE": json.dumps({"conn_type": "sqlite", "host": str(store.path)}),
                "PYTHONPATH": str(PROJECT_ROOT / "plugins")})
    return subprocess.run([sys.executable, "-m", "ct_operators", "predict", *args], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=300)


def test_cli_predict_scores_unscored_then_ids(s: Settings, store: SqliteFeatureStore) -> None:
    import json

    ids = add(store, [1.0, 2.0, 3.0])
    proc = _cli(s, store)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert (out["written"], out["model_version"]) == (3, "1")
    assert store.count_predictions() == 3
    proc = _cli(s, store, "--ids", str(ids[0]))
    assert proc.returncode == 0 and json.loads(proc.stdout)["written"] == 0  # already scored


def test_cli_predict_without_champion_explains_and_exits_1(s: Settings, tmp_path: Path) -> None:
    store = SqliteFeatureStore(tmp_path / "empty.db")
    store.init_schema()
    add(store, [1.0])
    proc = _cli(dataclasses.replace(s, registered_model_name="never_registered"), store)
    assert proc.returncode == 1, (proc.stdout, proc.stderr[-3000:])
    assert "error: no champion for model 'never_registered': run ct_training first" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert store.count_predictions() == 0


def test_cli_predict_naive_window_is_utc_and_bad_window_exits_2(s: Settings, store: SqliteFeatureStore) -> None:
    import json

    add(store, [1.0], datetime(2026, 2, 1, 1, 30, tzinfo=timezone.utc))
    add(store, [2.0], datetime(2026, 2, 1, 3, 30, tzinfo=timezone.utc))
    proc = _cli(s, store, "--start", "2026-02-01T01:00:00", "--end", "2026-02-01T02:00:00")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["written"] == 1
    proc = _cli(s, store, "--start", "2026-02-02", "--end", "2026-02-01")
    assert proc.returncode == 2 and "not before its end" in proc.stderr
    assert store.count_predictions() == 1
