"""The FeatureStore contract, run on every backend: SQLite, IRIS through the fake driver, and a live IRIS.

* ``sqlite``: ``SqliteFeatureStore`` on a temporary file.
* ``iris-fake``: ``IrisFeatureStore`` with ``tests/integration/fake_iris.py`` as ``iris.dbapi`` and the
  native API; proves the Python side and the statements' logic, not that IRIS accepts the SQL.
* ``iris-live``: ``IrisFeatureStore`` with the real ``intersystems-irispython`` driver against the server
  named by ``CT_IRIS_HOST`` (+ ``CT_IRIS_PORT``, ``CT_IRIS_NAMESPACE``, ``CT_IRIS_USER``,
  ``CT_IRIS_PASSWORD``); skipped when ``CT_IRIS_HOST`` is unset. A live namespace keeps its data, so
  every test works on rows it made itself (unique labels, model names, seed content and time windows)
  and asserts on differences, never on absolute counts.
"""
from __future__ import annotations

import os
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest

from ct_operators.config import PROJECT_ROOT
from ct_operators.store.base import SERVING_POINTER_KEY, FeatureStore, FeatureStoreError
from ct_operators.store.factory import StoreConnection
from ct_operators.store.iris import CONFIG_GLOBAL, IrisFeatureStore, iris_connect_kwargs
from ct_operators.store.sqlite import SqliteFeatureStore
from ct_operators.store.types import Prediction, Sample, TimeWindow, to_db_ts
from tests.integration.fake_iris import DataRow, FakeIrisServer, translate

LIVE_REASON = ("live IRIS contract skipped: set CT_IRIS_HOST (and CT_IRIS_PORT, CT_IRIS_NAMESPACE, "
               "CT_IRIS_USER, CT_IRIS_PASSWORD) to run it against a server")
BACKENDS = [
    "sqlite",
    "iris-fake",
    pytest.param("iris-live", marks=[pytest.mark.iris,
                                     pytest.mark.skipif(not os.environ.get("CT_IRIS_HOST"), reason=LIVE_REASON)]),
]


def live_connection() -> StoreConnection:
    return StoreConnection(
        conn_type="iris", host=os.environ["CT_IRIS_HOST"], port=int(os.environ.get("CT_IRIS_PORT", "1972")),
        schema=os.environ.get("CT_IRIS_NAMESPACE", "USER"), login=os.environ.get("CT_IRIS_USER", "_SYSTEM"),
        password=os.environ.get("CT_IRIS_PASSWORD", ""))


@pytest.fixture
def fake_server(tmp_path: Path) -> FakeIrisServer:
    return FakeIrisServer(tmp_path / "fake_iris.db")


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FeatureStore]:
    if request.param == "sqlite":
        s: FeatureStore = SqliteFeatureStore(tmp_path / "fs.db")
    elif request.param == "iris-fake":
        server = request.getfixturevalue("fake_server")
        conn = StoreConnection(conn_type="iris", host="iris.test", port=1972, schema="USER",
                               login="ct", password="fake-password")
        s = IrisFeatureStore.from_connection(conn, dbapi=server.dbapi, native=server.native)
    else:
        s = IrisFeatureStore.from_connection(live_connection())
    s.init_schema()
    yield s


@pytest.fixture
def token() -> str:
    return uuid.uuid4().hex[:12]


def window_for(token: str) -> TimeWindow:
    """A one-hour window in 2001 that only this test's rows fall into (on a shared live namespace)."""
    start = datetime(2001, 1, 1, tzinfo=timezone.utc) + timedelta(hours=int(token[:6], 16) % 80_000)
    return TimeWindow(start, start + timedelta(hours=1))


def insert_labelled(store: FeatureStore, token: str, ys: list[float | None]) -> list[int]:
    """Insert one sample per y in this test's window; return their ids (ascending)."""
    window = window_for(token)
    samples = [Sample(x=float(i), y=y, label=token, event_ts=window.start + timedelta(seconds=i))
               for i, y in enumerate(ys)]
    assert store.insert_samples(samples) == len(samples)
    frame = store.fetch_samples(window)
    frame = frame[frame["label"] == token]
    return [int(i) for i in frame["id"]]


def prediction(sample_id: int, model: str, version: str = "1", value: float = 1.0) -> Prediction:
    return Prediction(sample_id=sample_id, predicted=value, model_name=model, model_version=version,
                      mlflow_run_id="run-" + model[:8], inference_ms=0.5,
                      predicted_at=datetime(2001, 6, 1, 12, 0, 0, 123456, tzinfo=timezone.utc))


# -- the contract --------------------------------------------------------------------------------
def test_init_schema_twice_is_harmless(store: FeatureStore) -> None:
    before = store.count_samples()
    store.init_schema()
    assert store.count_samples() == before


def test_seed_load_is_idempotent(store: FeatureStore, tmp_path: Path, token: str) -> None:
    seed = tmp_path / "seed.csv"
    seed.write_text("x,y,label,datetime\n1.5,2.5," + token + ",2001-01-01 00:00:00\n"
                    "2.5,,," + "2001-01-01 00:00:01.5\n", encoding="utf-8")
    before = store.count_samples()
    assert store.load_seed_csv(seed) == 2
    assert store.load_seed_csv(seed) == 0
    assert store.count_samples() == before + 2


def test_project_seed_file_loads_once(store: FeatureStore) -> None:
    seed = PROJECT_ROOT / "include" / "data" / "point_samples.csv"
    first = store.load_seed_csv(seed)
    assert first in (0, 11)  # 0 only on a live namespace that already holds it
    assert store.load_seed_csv(seed) == 0


def test_insert_and_fetch_by_window_and_ids(store: FeatureStore, token: str) -> None:
    ids = insert_labelled(store, token, [10.0, 11.0, None])
    assert len(ids) == 3 and ids == sorted(ids)
    frame = store.fetch_samples(window_for(token))
    mine = frame[frame["label"] == token]
    assert list(mine["x"]) == [0.0, 1.0, 2.0]
    assert mine["y"].isna().tolist() == [False, False, True]
    assert str(mine["event_ts"].dt.tz) == "UTC"
    assert mine["event_ts"].iloc[1] == window_for(token).start + timedelta(seconds=1)
    # half-open: a window ending at the second sample excludes it
    narrow = store.fetch_samples(TimeWindow(window_for(token).start, window_for(token).start + timedelta(seconds=1)))
    assert narrow[narrow["label"] == token]["x"].tolist() == [0.0]
    by_ids = store.fetch_samples_by_ids([ids[2], ids[0], ids[0], 10**12])
    assert by_ids["id"].tolist() == [ids[0], ids[2]]
    assert store.fetch_samples_by_ids([]).empty


def test_fetch_by_many_ids_crosses_chunks(store: FeatureStore, token: str) -> None:
    ids = insert_labelled(store, token, [float(i) for i in range(230)])
    frame = store.fetch_samples_by_ids(list(reversed(ids)))
    assert frame["id"].tolist() == ids
    assert frame["label"].eq(token).all()


def test_unscored_samples(store: FeatureStore, token: str) -> None:
    ids = insert_labelled(store, token, [1.0, 2.0, 3.0])
    model = "m-" + token
    first = store.fetch_unscored(model, "1", after_id=ids[0] - 1, limit=2)
    assert first["id"].tolist() == ids[:2]
    store.insert_predictions([prediction(ids[0], model), prediction(ids[1], model)])
    rest = store.fetch_unscored(model, "1", after_id=ids[0] - 1, limit=10)
    assert rest["id"].tolist()[:1] == [ids[2]]
    # another version of the model has scored nothing yet
    assert store.fetch_unscored(model, "2", after_id=ids[0] - 1, limit=3)["id"].tolist() == ids


def test_insert_predictions_is_idempotent(store: FeatureStore, token: str) -> None:
    ids = insert_labelled(store, token, [1.0, 2.0])
    model = "m-" + token
    before = store.count_predictions()
    batch = [prediction(i, model) for i in ids]
    assert store.insert_predictions(batch) == 2
    assert store.insert_predictions(batch) == 0
    assert store.insert_predictions([prediction(ids[0], model, value=99.0)]) == 0
    assert store.count_predictions() == before + 2
    assert store.insert_predictions([prediction(ids[0], model, version="2")]) == 1
    assert store.insert_predictions([]) == 0


def test_insert_prediction_batch_is_idempotent(store: FeatureStore, token: str) -> None:
    ids = insert_labelled(store, token, [1.0, 2.0, 3.0])
    batch = dict(model_name="mb-" + token, model_version="1", mlflow_run_id="run-" + token, inference_ms=0.01,
                 predicted_at=datetime(2001, 6, 1, 12, 0, tzinfo=timezone.utc))
    before = store.count_predictions()
    assert store.insert_prediction_batch(ids, [10.0, 20.0, 30.0], **batch) == 3
    assert store.insert_prediction_batch(ids, [11.0, 21.0, 31.0], **batch) == 0
    assert store.count_predictions() == before + 3
    frame = store.fetch_labelled_predictions("mb-" + token, "1", window_for(token))
    assert frame["predicted"].tolist() == [10.0, 20.0, 30.0]
    with pytest.raises(ValueError, match="2 predictions for 3 sample ids"):
        store.insert_prediction_batch(ids, [1.0, 2.0], **batch)


def test_labelled_predictions(store: FeatureStore, token: str) -> None:
    ids = insert_labelled(store, token, [5.0, None, 7.0])
    model = "m-" + token
    store.insert_predictions([prediction(i, model, value=float(n)) for n, i in enumerate(ids)])
    frame = store.fetch_labelled_predictions(model, "1", window_for(token))
    assert list(frame.columns) == ["sample_id", "event_ts", "x", "y", "predicted", "predicted_at"]
    assert frame["sample_id"].tolist() == [ids[0], ids[2]]
    assert frame["y"].tolist() == [5.0, 7.0]
    assert frame["predicted"].tolist() == [0.0, 2.0]
    assert frame["predicted_at"].iloc[0] == datetime(2001, 6, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
    assert store.fetch_labelled_predictions(model, "other", window_for(token)).empty


def test_serving_pointer(store: FeatureStore, token: str) -> None:
    uri = f"models:/ct_point_regressor/{token}"
    store.set_serving_pointer(uri)
    assert store.get_serving_pointer() == uri
    store.set_serving_pointer(uri + "-next")
    assert store.get_serving_pointer() == uri + "-next"
    if isinstance(store, IrisFeatureStore):  # fake and live: the value is in ^ML.Config("ModelPath")
        conn = store.connect()
        try:
            assert store.native.createIRIS(conn).get("ML.Config", "ModelPath") == uri + "-next"
        finally:
            conn.close()
    else:
        assert store.get_config(SERVING_POINTER_KEY) == uri + "-next"


def test_config_upsert(store: FeatureStore, token: str) -> None:
    key = "test:" + token
    assert store.get_config(key) is None
    store.set_config(key, "a")
    store.set_config(key, "b")
    assert store.get_config(key) == "b"


def test_training_runs_and_claim_retraining(store: FeatureStore, token: str) -> None:
    t0 = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=1)
    window = TimeWindow(t0 - timedelta(hours=1), t0)

    def claim(seconds: int, monitoring_run: str) -> str | None:
        return store.claim_retraining(now=t0 + timedelta(seconds=seconds), cooldown=timedelta(seconds=10),
                                      lease=timedelta(hours=1), reason="r2 below threshold", window=window,
                                      monitoring_run_id=f"mon-{monitoring_run}-{token}")

    assert claim(0, "a") is None
    assert store.last_trigger_at() == t0
    refused = claim(5, "b")
    assert refused is not None and "cooldown" in refused
    assert claim(6, "a") is None  # the same monitoring run retried keeps its claim
    assert store.last_trigger_at() == t0
    run_id = "train-" + token
    store.start_training_run(run_id, t0 + timedelta(seconds=20))
    store.start_training_run(run_id, t0 + timedelta(seconds=20))  # a retried task: still one run
    try:
        assert store.active_training_runs(t0) == [run_id]
        refused = claim(40, "c")
        assert refused is not None and run_id in refused
    finally:
        store.finish_training_run(run_id, "success", t0 + timedelta(seconds=50))
    assert run_id not in store.active_training_runs(t0)
    assert claim(60, "d") is None
    assert store.last_trigger_at() == t0 + timedelta(seconds=60)


# -- IRIS: two monitors claiming at once (no BEGIN IMMEDIATE there: an exclusive table lock) --------
LOCK_CLAIM = "LOCK TABLE retrain_triggers IN EXCLUSIVE MODE WAIT 5"
UNLOCK_CLAIM = "UNLOCK TABLE retrain_triggers IN EXCLUSIVE MODE"


def iris_fake_store(server: FakeIrisServer) -> IrisFeatureStore:
    conn = StoreConnection(conn_type="iris", host="iris.test", port=1972, schema="USER",
                           login="ct", password="fake-password")
    store = IrisFeatureStore.from_connection(conn, dbapi=server.dbapi, native=server.native)
    store.init_schema()
    return store


def claim_at(store: FeatureStore, now: datetime, monitoring_run_id: str) -> str | None:
    return store.claim_retraining(now=now, cooldown=timedelta(hours=1), lease=timedelta(hours=1),
                                  reason="r2 below threshold", window=TimeWindow(now - timedelta(hours=1), now),
                                  monitoring_run_id=monitoring_run_id)


def test_a_second_monitor_waits_for_the_first_claim_and_sees_its_trigger(tmp_path: Path) -> None:
    """Monitor A holds the claim lock and has not written yet when B starts claiming: B must wait, then
    see A's trigger and be refused. Without the lock B would read "no trigger" and insert a second one."""
    import threading

    server = FakeIrisServer(tmp_path / "fake_iris.db")
    store = iris_fake_store(server)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    monitor_a = server.connect(hostname="iris.test", port=1972, namespace="USER", username="ct",
                               password="fake-password")
    a = monitor_a.cursor()
    a.execute(LOCK_CLAIM)  # A is between taking the lock and reading
    outcome: dict = {}
    second = threading.Thread(target=lambda: outcome.update(b=claim_at(store, now, "mon-b")))
    second.start()
    second.join(timeout=0.5)
    assert second.is_alive(), f"B claimed while A held the lock: {outcome}"
    a.execute(store.sql["insert_retrain_trigger"], (to_db_ts(now), "A", to_db_ts(now), to_db_ts(now), "mon-a"))
    a.execute(UNLOCK_CLAIM)  # deferred to A's commit
    monitor_a.commit()
    second.join(timeout=30)
    assert outcome["b"] is not None and "cooldown" in outcome["b"], outcome
    a.execute("SELECT monitoring_run_id FROM retrain_triggers")
    assert [row[0] for row in a.fetchall()] == ["mon-a"]  # one retraining, A's
    monitor_a.close()


def test_a_claim_lock_held_too_long_fails_clearly_and_claims_nothing(tmp_path: Path) -> None:
    server = FakeIrisServer(tmp_path / "fake_iris.db", lock_wait_cap_s=0.3)
    store = iris_fake_store(server)
    now = datetime.now(timezone.utc)
    holder = server.connect(hostname="iris.test", port=1972, namespace="USER", username="ct",
                            password="fake-password")
    holder.cursor().execute(LOCK_CLAIM)
    with pytest.raises(FeatureStoreError, match=r"could not take the retraining-claim lock .*SQLCODE: <-110>"):
        claim_at(store, now, "mon-late")
    assert store.last_trigger_at() is None
    holder.close()  # the holder's process ends: its lock goes with it
    assert claim_at(store, now, "mon-late") is None
    holder = server.connect(hostname="iris.test", port=1972, namespace="USER", username="ct",
                            password="fake-password")
    holder.cursor().execute(LOCK_CLAIM)  # the successful claim released the lock at its commit
    holder.close()


# -- IRIS specifics: the pointer lives in the global; connection fields map to driver keywords ----
def test_iris_serving_pointer_is_the_global(fake_server: FakeIrisServer) -> None:
    conn = StoreConnection(conn_type="iris", host="iris.test", port=1972, schema="USER",
                           login="ct", password="fake-password")
    store = IrisFeatureStore.from_connection(conn, dbapi=fake_server.dbapi, native=fake_server.native)
    store.init_schema()
    assert store.get_serving_pointer() is None
    store.set_serving_pointer("models:/m/3")
    native = fake_server.native.createIRIS(fake_server.connect(
        hostname="iris.test", port=1972, namespace="USER", username="ct", password="fake-password"))
    assert native.get("ML.Config", "ModelPath") == "models:/m/3"
    assert store.get_config(SERVING_POINTER_KEY) is None  # the table is not a second copy
    native.set("models:/m/4", CONFIG_GLOBAL, SERVING_POINTER_KEY)  # e.g. written by ObjectScript
    assert store.get_serving_pointer() == "models:/m/4"
    native.kill(CONFIG_GLOBAL)  # killing the whole global removes the pointer with it
    assert store.get_serving_pointer() is None and native.isDefined(CONFIG_GLOBAL, SERVING_POINTER_KEY) == 0


def test_iris_connect_kwargs_and_errors(fake_server: FakeIrisServer) -> None:
    conn = StoreConnection(conn_type="iris", host="iris", port=None, schema=None, login="ct",
                           password="secret", extra={"timeout": 3})
    assert iris_connect_kwargs(conn) == {"hostname": "iris", "port": 1972, "namespace": "USER",
                                         "username": "ct", "password": "secret", "timeout": 3}
    store = IrisFeatureStore.from_connection(conn, dbapi=fake_server.dbapi, native=fake_server.native)
    assert "secret" not in repr(store)
    with pytest.raises(Exception, match="cannot connect to IRIS at iris:1972/USER"):
        store.count_samples()
    with pytest.raises(Exception, match="no host"):
        iris_connect_kwargs(StoreConnection(conn_type="iris", login="ct"))


def test_iris_sql_files_match_sqlite_names() -> None:
    sql_root = PROJECT_ROOT / "include" / "sql"
    assert sorted(p.name for p in (sql_root / "iris").glob("*.sql")) == \
        sorted(p.name for p in (sql_root / "sqlite").glob("*.sql"))


# -- the fake itself: rows are not tuples, and the translation is the documented one ---------------
def test_fake_rows_are_datarows_not_tuples(fake_server: FakeIrisServer) -> None:
    conn = fake_server.connect(hostname="iris.test", port=1972, namespace="USER", username="ct",
                               password="fake-password")
    cur = conn.cursor()
    cur.execute("SELECT ? AS a, ? AS b", (1, "two"))
    (row,) = cur.fetchall()
    assert isinstance(row, DataRow) and not isinstance(row, tuple)
    assert row[0] == 1 and row["b"] == "two" and row[:] == [1, "two"] and tuple(row) == (1, "two")
    with pytest.raises(Exception, match="Access Denied"):
        fake_server.connect(hostname="iris.test", port=1972, namespace="USER", username="ct", password="x")
    with pytest.raises(TypeError):
        fake_server.connect(host="iris.test", port=1972, namespace="USER", username="ct",  # type: ignore[call-arg]
                            password="fake-password")


def test_fake_translation() -> None:
    sql, params = translate("SELECT TOP ? id FROM t WHERE a > ? ORDER BY id", (5, 1))
    assert sql.endswith("LIMIT ?") and "TOP" not in sql and params == (1, 5)
    sql, _ = translate("INSERT OR UPDATE INTO t (k, v) VALUES (?, ?)", ("a", "b"))
    assert sql == "INSERT INTO t (k, v) VALUES (?, ?) ON CONFLICT DO UPDATE SET k = excluded.k, v = excluded.v"


def test_factory_opens_iris_from_the_airflow_conn_json() -> None:
    """The AIRFLOW_CONN_CT_FEATURE_STORE value of docker-compose.yaml / docs/deploy.md opens an IRIS store."""
    from ct_operators.store.factory import open_store, parse_connection

    value = ('{"conn_type": "iris", "host": "iris", "port": 1972, "schema": "USER", '
             '"login": "_SYSTEM", "password": "pw", "extra": {"timeout": 5}}')
    store = open_store(parse_connection(value))  # constructing does not connect
    assert isinstance(store, IrisFeatureStore)
    assert store.connect_kwargs == {"hostname": "iris", "port": 1972, "namespace": "USER",
                                    "username": "_SYSTEM", "password": "pw", "timeout": 5}


def test_real_driver_accepts_the_connect_keywords() -> None:
    """The installed intersystems-irispython takes our keyword names: it fails on the network, not on them."""
    import socket

    with socket.socket() as probe:  # a loopback port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conn = StoreConnection(conn_type="iris", host="127.0.0.1", port=port, login="ct", password="pw",
                           extra={"timeout": 2})
    store = IrisFeatureStore.from_connection(conn)  # the real iris.dbapi and native modules
    with pytest.raises(Exception, match="cannot connect to IRIS at 127.0.0.1") as info:
        store.count_samples()
    assert not isinstance(info.value.__cause__, TypeError), info.value


def test_binds_header_is_parsed_strictly(tmp_path: Path) -> None:
    from ct_operators.store.base import FeatureStoreError
    from ct_operators.store.iris import IrisSqlLibrary

    folder = tmp_path / "iris"
    folder.mkdir()
    (folder / "ok.sql").write_text("-- binds: 2 1   (b, a)\nSELECT ?, ?\n", encoding="utf-8")
    (folder / "zero.sql").write_text("-- binds: 0 1\nSELECT ?, ?\n", encoding="utf-8")
    (folder / "typo.sql").write_text("-- binds: two one\nSELECT ?, ?\n", encoding="utf-8")
    library = IrisSqlLibrary(root=tmp_path)
    assert library["ok"] == "SELECT ?, ?" and library.bindings["SELECT ?, ?"] == (1, 0)
    for name in ("zero", "typo"):
        with pytest.raises(FeatureStoreError, match="binds"):
            library[name]
