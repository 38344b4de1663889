"""The SQLite feature store against a real database file."""
from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from ct_operators.store.base import SERVING_POINTER_KEY, FeatureStoreError, parse_samples_csv
from ct_operators.store.sqlite import SqliteFeatureStore
from ct_operators.store.types import Prediction, Sample, TimeWindow

UTC = timezone.utc
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TABLES = {"point_samples", "predictions", "ml_config", "training_runs", "retrain_triggers"}


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def hourly(n: int, start: datetime = T0) -> list[Sample]:
    return [Sample(x=float(i), y=2.0 * i + 1, label="a", event_ts=start + timedelta(hours=i)) for i in range(n)]


def prediction(sample_id: int, version: str = "1", predicted: float = 1.0, model: str = "m") -> Prediction:
    return Prediction(sample_id=sample_id, predicted=predicted, model_name=model, model_version=version,
                      mlflow_run_id="run-1", inference_ms=0.5, predicted_at=T0 + timedelta(days=1))


# -- schema and seed -------------------------------------------------------------------

def test_schema_creates_tables_and_is_idempotent(sqlite_store: SqliteFeatureStore) -> None:
    sqlite_store.insert_samples(hourly(2))
    sqlite_store.init_schema()  # second time: no error, data kept
    assert TABLES <= tables(sqlite_store.path)
    assert sqlite_store.count_samples() == 2


def test_wal_mode_is_on(sqlite_store: SqliteFeatureStore) -> None:
    with sqlite3.connect(sqlite_store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
    conn = sqlite_store.connect()
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    finally:
        conn.close()


def test_seed_load_is_idempotent(sqlite_store: SqliteFeatureStore, seed_csv: Path) -> None:
    expected = len(parse_samples_csv(seed_csv.read_text()))
    assert expected > 0
    assert sqlite_store.load_seed_csv(seed_csv) == expected
    assert sqlite_store.count_samples() == expected
    assert sqlite_store.load_seed_csv(seed_csv) == 0
    assert sqlite_store.count_samples() == expected


def test_seed_with_other_content_loads_again(sqlite_store: SqliteFeatureStore, tmp_path: Path) -> None:
    a = tmp_path / "a.csv"
    a.write_text("x,y,label,datetime\n1,2,a,2026-01-01 00:00:00\n")
    b = tmp_path / "b.csv"
    b.write_text("x,y,label,datetime\n1,2,a,2026-01-01 00:00:00\n3,4,b,2026-01-02 00:00:00\n")
    assert sqlite_store.load_seed_csv(a) == 1
    assert sqlite_store.load_seed_csv(b) == 2
    assert sqlite_store.load_seed_csv(a) == 0
    assert sqlite_store.count_samples() == 3


def test_seed_csv_naive_datetimes_are_utc_and_empty_cells_none() -> None:
    samples = parse_samples_csv("x,y,label,datetime\n1.5,,,2026-01-01 10:00:00\n2,3,b,\n")
    assert samples[0].event_ts == datetime(2026, 1, 1, 10, tzinfo=UTC)
    assert samples[0].y is None and samples[0].label is None
    assert samples[1].event_ts is None and samples[1].label == "b"


@pytest.mark.parametrize("text, match", [
    ("a,b\n1,2\n", "missing column"),
    ("x,y\n1,abc\n", "line 2"),
    ("x,y\n1,nan\n", "line 2"),
    ("x,y,datetime\n1,2,yesterday\n", "line 2"),
])
def test_bad_seed_csv_raises(text: str, match: str) -> None:
    with pytest.raises(FeatureStoreError, match=match):
        parse_samples_csv(text)


# -- samples ---------------------------------------------------------------------------

def test_fetch_samples_window_is_half_open(sqlite_store: SqliteFeatureStore) -> None:
    sqlite_store.insert_samples(hourly(5))  # T0, T0+1h, ..., T0+4h
    frame = sqlite_store.fetch_samples(TimeWindow(T0 + timedelta(hours=1), T0 + timedelta(hours=3)))
    assert frame["x"].tolist() == [1.0, 2.0]  # start included, end excluded
    assert list(frame.columns) == ["id", "x", "y", "label", "event_ts"]
    assert str(frame["event_ts"].dt.tz) == "UTC"
    assert frame["event_ts"].iloc[0] == pd.Timestamp(T0 + timedelta(hours=1))
    assert len(sqlite_store.fetch_samples()) == 5
    assert sqlite_store.fetch_samples(TimeWindow(start=T0 + timedelta(hours=4))).x.tolist() == [4.0]
    assert sqlite_store.fetch_samples(TimeWindow(end=T0)).empty


def test_fetch_samples_window_with_other_offset(sqlite_store: SqliteFeatureStore) -> None:
    sqlite_store.insert_samples(hourly(3))
    plus2 = timezone(timedelta(hours=2))
    start = (T0 + timedelta(hours=1)).astimezone(plus2)
    assert sqlite_store.fetch_samples(TimeWindow(start=start)).x.tolist() == [1.0, 2.0]


def test_missing_event_ts_gets_now(sqlite_store: SqliteFeatureStore) -> None:
    before = datetime.now(UTC)
    sqlite_store.insert_samples([Sample(x=1.0, y=None)])
    frame = sqlite_store.fetch_samples()
    assert frame["event_ts"].iloc[0] >= pd.Timestamp(before)
    assert pd.isna(frame["y"].iloc[0])


def test_fetch_samples_by_ids(sqlite_store: SqliteFeatureStore) -> None:
    sqlite_store.insert_samples(hourly(5))
    ids = sqlite_store.fetch_samples()["id"].tolist()
    frame = sqlite_store.fetch_samples_by_ids([ids[3], ids[1], ids[3], 99999])
    assert frame["id"].tolist() == [ids[1], ids[3]]
    assert frame["x"].tolist() == [1.0, 3.0]
    assert sqlite_store.fetch_samples_by_ids([]).empty


# -- predictions -----------------------------------------------------------------------

def test_unscored_and_insert_predictions_idempotent(sqlite_store: SqliteFeatureStore) -> None:
    sqlite_store.insert_samples(hourly(4))
    ids = sqlite_store.fetch_samples()["id"].tolist()
    assert sqlite_store.fetch_unscored("m", "1", after_id=0, limit=10)["id"].tolist() == ids
    assert sqlite_store.fetch_unscored("m", "1", after_id=ids[1], limit=10)["id"].tolist() == ids[2:]
    assert sqlite_store.fetch_unscored("m", "1", after_id=0, limit=2)["id"].tolist() == ids[:2]

    assert sqlite_store.insert_predictions([prediction(ids[0]), prediction(ids[1])]) == 2
    assert sqlite_store.fetch_unscored("m", "1", after_id=0, limit=10)["id"].tolist() == ids[2:]
    # the same (model, version, sample) again: ignored by the unique key
    assert sqlite_store.insert_predictions([prediction(ids[0], predicted=5.0), prediction(ids[2])]) == 1
    assert sqlite_store.count_predictions() == 3
    # another version of the model still sees every sample as unscored
    assert sqlite_store.fetch_unscored("m", "2", after_id=0, limit=10)["id"].tolist() == ids
    assert sqlite_store.insert_predictions([prediction(ids[0], version="2")]) == 1
    assert sqlite_store.insert_predictions([]) == 0
    with sqlite3.connect(sqlite_store.path) as conn:
        kept = conn.execute("SELECT predicted FROM predictions WHERE sample_id=? AND model_version='1'",
                            (ids[0],)).fetchall()
    assert kept == [(1.0,)]  # the first prediction is kept, not overwritten


def test_prediction_for_unknown_sample_is_refused(sqlite_store: SqliteFeatureStore) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        sqlite_store.insert_predictions([prediction(424242)])
    assert sqlite_store.count_predictions() == 0


def test_labelled_predictions(sqlite_store: SqliteFeatureStore) -> None:
    sqlite_store.insert_samples(hourly(3) + [Sample(x=9.0, y=None, event_ts=T0 + timedelta(hours=5))])
    ids = sqlite_store.fetch_samples()["id"].tolist()
    sqlite_store.insert_predictions([prediction(i, predicted=float(n)) for n, i in enumerate(ids)])
    sqlite_store.insert_predictions([prediction(ids[0], version="2")])

    frame = sqlite_store.fetch_labelled_predictions("m", "1")
    assert list(frame.columns) == ["sample_id", "event_ts", "x", "y", "predicted", "predicted_at"]
    assert frame["sample_id"].tolist() == ids[:3]  # the unlabelled sample is left out
    assert frame["predicted"].tolist() == [0.0, 1.0, 2.0]
    assert frame["y"].tolist() == [1.0, 3.0, 5.0]
    assert str(frame["predicted_at"].dt.tz) == "UTC"

    window = TimeWindow(T0 + timedelta(hours=1), T0 + timedelta(hours=2))
    assert sqlite_store.fetch_labelled_predictions("m", "1", window)["sample_id"].tolist() == [ids[1]]
    assert sqlite_store.fetch_labelled_predictions("m", "2")["sample_id"].tolist() == [ids[0]]
    assert sqlite_store.fetch_labelled_predictions("other", "1").empty


# -- config and serving pointer --------------------------------------------------------

def test_serving_pointer(sqlite_store: SqliteFeatureStore) -> None:
    assert sqlite_store.get_serving_pointer() is None
    sqlite_store.set_serving_pointer("models:/ct_point_regressor/1")
    sqlite_store.set_serving_pointer("models:/ct_point_regressor/2")
    assert sqlite_store.get_serving_pointer() == "models:/ct_point_regressor/2"
    assert sqlite_store.get_config(SERVING_POINTER_KEY) == "models:/ct_point_regressor/2"
    # a second store object on the same file sees it
    assert SqliteFeatureStore(sqlite_store.path).get_serving_pointer() == "models:/ct_point_regressor/2"


def test_config_values(sqlite_store: SqliteFeatureStore) -> None:
    assert sqlite_store.get_config("k") is None
    sqlite_store.set_config("k", "v1")
    sqlite_store.set_config("k", "v2")
    assert sqlite_store.get_config("k") == "v2"


# -- retraining bookkeeping ------------------------------------------------------------

def claim(store: SqliteFeatureStore, now: datetime, cooldown_min: float = 60, lease_min: float = 120) -> str | None:
    return store.claim_retraining(now=now, cooldown=timedelta(minutes=cooldown_min),
                                  lease=timedelta(minutes=lease_min), reason="r2 below threshold",
                                  window=TimeWindow(T0 - timedelta(days=1), T0), monitoring_run_id=f"mon-{now.isoformat()}")


def test_claim_retraining_cooldown(sqlite_store: SqliteFeatureStore) -> None:
    assert sqlite_store.last_trigger_at() is None
    assert claim(sqlite_store, T0) is None
    assert sqlite_store.last_trigger_at() == T0
    refused = claim(sqlite_store, T0 + timedelta(minutes=30))
    assert refused is not None and "cooldown" in refused
    assert sqlite_store.last_trigger_at() == T0  # nothing recorded
    assert claim(sqlite_store, T0 + timedelta(minutes=61)) is None
    assert sqlite_store.last_trigger_at() == T0 + timedelta(minutes=61)
    with sqlite3.connect(sqlite_store.path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM retrain_triggers").fetchone()[0] == 2


def test_claim_retraining_refused_while_training_active(sqlite_store: SqliteFeatureStore) -> None:
    sqlite_store.start_training_run("manual__1", T0 - timedelta(minutes=10))
    assert sqlite_store.active_training_runs(T0 - timedelta(hours=2)) == ["manual__1"]
    refused = claim(sqlite_store, T0)
    assert refused is not None and "manual__1" in refused and "active" in refused
    assert sqlite_store.last_trigger_at() is None
    sqlite_store.finish_training_run("manual__1", "promoted", T0)
    assert sqlite_store.active_training_runs(T0 - timedelta(hours=2)) == []
    assert claim(sqlite_store, T0) is None


def test_claim_retraining_ignores_run_older_than_lease(sqlite_store: SqliteFeatureStore) -> None:
    sqlite_store.start_training_run("stale", T0 - timedelta(hours=3))  # never finished (killed)
    assert claim(sqlite_store, T0, lease_min=120) is None


def test_claim_retraining_requires_aware_now(sqlite_store: SqliteFeatureStore) -> None:
    with pytest.raises(ValueError, match="naive"):
        claim(sqlite_store, datetime(2026, 3, 1, 12, 0))


# -- hostile input is data -------------------------------------------------------------

INJECTIONS = [
    "'); DROP TABLE point_samples; --",
    "a' OR '1'='1",
    "x\"; DELETE FROM ml_config; --",
    "Robert'); DROP TABLE predictions;--",
]


@pytest.mark.parametrize("label", INJECTIONS)
def test_injection_in_label_is_stored_as_data(sqlite_store: SqliteFeatureStore, label: str) -> None:
    sqlite_store.set_serving_pointer("models:/m/1")
    sqlite_store.insert_samples([Sample(x=1.0, y=2.0, label=label, event_ts=T0), *hourly(2, T0 + timedelta(hours=1))])
    frame = sqlite_store.fetch_samples()
    assert frame["label"].tolist()[0] == label
    assert sqlite_store.count_samples() == 3
    assert TABLES <= tables(sqlite_store.path)
    assert sqlite_store.get_serving_pointer() == "models:/m/1"


@pytest.mark.parametrize("value", INJECTIONS)
def test_injection_in_config_and_model_names_is_data(sqlite_store: SqliteFeatureStore, value: str) -> None:
    sqlite_store.insert_samples(hourly(2))
    ids = sqlite_store.fetch_samples()["id"].tolist()
    sqlite_store.set_config(value, value)
    assert sqlite_store.get_config(value) == value
    sqlite_store.insert_predictions([prediction(ids[0], model=value, version=value)])
    assert sqlite_store.fetch_unscored(value, value, 0, 10)["id"].tolist() == ids[1:]
    assert sqlite_store.fetch_unscored("m", "1", 0, 10)["id"].tolist() == ids
    assert TABLES <= tables(sqlite_store.path)
    assert sqlite_store.count_samples() == 2


@pytest.mark.parametrize("bad_id", ["1) OR 1=1 --", "1; DROP TABLE point_samples", "0 OR 1=1"])
def test_injection_in_ids_is_refused_not_executed(sqlite_store: SqliteFeatureStore, bad_id: str) -> None:
    sqlite_store.insert_samples(hourly(3))
    with pytest.raises(ValueError):
        sqlite_store.fetch_samples_by_ids([bad_id])  # type: ignore[list-item]
    assert TABLES <= tables(sqlite_store.path)
    assert sqlite_store.count_samples() == 3


def test_numeric_string_ids_are_bound_as_integers(sqlite_store: SqliteFeatureStore) -> None:
    sqlite_store.insert_samples(hourly(3))
    ids = sqlite_store.fetch_samples()["id"].tolist()
    assert sqlite_store.fetch_samples_by_ids([str(ids[2])])["id"].tolist() == [ids[2]]  # type: ignore[list-item]


def test_failed_transaction_rolls_back(sqlite_store: SqliteFeatureStore) -> None:
    with pytest.raises(RuntimeError):
        with sqlite_store.transaction() as cur:
            cur.execute(sqlite_store.sql["insert_sample"], (1.0, 2.0, "a", "2026-03-01 12:00:00.000000"))
            raise RuntimeError("boom")
    assert sqlite_store.count_samples() == 0


def test_rerun_of_a_training_run_renews_its_lease(sqlite_store: SqliteFeatureStore) -> None:
    """Regression: a cleared and re-run DAG run kept its old started_at and so fell outside the lease."""
    sqlite_store.start_training_run("manual__1", T0 - timedelta(hours=3))
    sqlite_store.finish_training_run("manual__1", "failed", T0 - timedelta(hours=3))
    sqlite_store.start_training_run("manual__1", T0 - timedelta(minutes=1))  # cleared and running again
    refused = claim(sqlite_store, T0, lease_min=120)
    assert refused is not None and "manual__1" in refused


def test_reads_see_a_snapshot_and_never_wait_for_a_writer(tmp_path: Path) -> None:
    """A long insert (the drift simulator) must not stall scoring or monitoring reads, nor the reverse."""
    store = SqliteFeatureStore(tmp_path / "fs.db", busy_timeout_s=0.2)
    store.init_schema()
    store.insert_samples(hourly(3))
    store.set_serving_pointer("models:/m/1")
    writer = sqlite3.connect(store.path, isolation_level=None, timeout=0)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO point_samples (x, y, label) VALUES (1, 2, 'uncommitted')")
        assert store.count_samples() == 3  # the committed snapshot, at once (a lock would fail after 0.2 s)
        assert len(store.fetch_samples()) == 3
        assert len(store.fetch_samples_by_ids([1, 2, 3, 4])) == 3
        assert len(store.fetch_unscored("m", "1", after_id=0, limit=10)) == 3
        assert store.get_serving_pointer() == "models:/m/1"
        with pytest.raises(FeatureStoreError, match="locked by another writer"):
            store.insert_samples(hourly(1))  # writers still queue behind each other
        writer.execute("COMMIT")
    finally:
        writer.close()
    assert store.count_samples() == 4
