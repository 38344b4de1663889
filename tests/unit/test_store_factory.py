"""Opening the feature store from a connection: Airflow's JSON and URI forms, and the SQLite fallback."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ct_operators.config import Settings
from ct_operators.store.base import FeatureStoreError
from ct_operators.store.factory import StoreConnection, open_store, parse_connection, store_from_environment
from ct_operators.store.sqlite import SqliteFeatureStore


def test_parse_json_connection(tmp_path: Path) -> None:
    conn = parse_connection(json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "fs.db")}))
    assert conn == StoreConnection(conn_type="sqlite", host=str(tmp_path / "fs.db"))


def test_parse_sqlite_uri_absolute_path() -> None:
    conn = parse_connection("sqlite:////data/ct/feature_store.db")
    assert conn.conn_type == "sqlite"
    assert conn.host == "/data/ct/feature_store.db"


def test_parse_iris_uri() -> None:
    conn = parse_connection("iris://ct_user:p%40ss@iris.example:1972/USER")
    assert (conn.conn_type, conn.host, conn.port, conn.schema, conn.login, conn.password) == \
        ("iris", "iris.example", 1972, "USER", "ct_user", "p@ss")


def test_password_not_in_repr() -> None:
    assert "secret" not in repr(StoreConnection(conn_type="iris", host="h", login="u", password="secret"))


def test_open_sqlite_store(tmp_path: Path) -> None:
    store = open_store(StoreConnection(conn_type="sqlite", host=str(tmp_path / "sub" / "fs.db")))
    assert isinstance(store, SqliteFeatureStore)
    store.init_schema()
    assert store.count_samples() == 0
    assert (tmp_path / "sub" / "fs.db").exists()


@pytest.mark.parametrize("conn, match", [
    (StoreConnection(conn_type="sqlite"), "no host"),
    (StoreConnection(conn_type="postgres", host="db"), "not supported"),
])
def test_open_store_errors(conn: StoreConnection, match: str) -> None:
    with pytest.raises(FeatureStoreError, match=match):
        open_store(conn)


def test_store_from_environment_uses_the_connection_variable(settings: Settings, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.db"
    env = {"AIRFLOW_CONN_CT_FEATURE_STORE": json.dumps({"conn_type": "sqlite", "host": str(other)})}
    store = store_from_environment(settings, environ=env)
    assert isinstance(store, SqliteFeatureStore) and store.path == other


def test_store_from_environment_falls_back_to_embedded_sqlite(settings: Settings) -> None:
    store = store_from_environment(settings, environ={})
    assert isinstance(store, SqliteFeatureStore) and store.path == settings.sqlite_path


def test_sqlite_store_fixture_is_initialised(sqlite_store: SqliteFeatureStore, settings: Settings) -> None:
    assert sqlite_store.path == settings.sqlite_path
    assert sqlite_store.count_samples() == 0 and sqlite_store.count_predictions() == 0
