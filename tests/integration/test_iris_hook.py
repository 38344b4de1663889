"""IrisHook over the fake driver: connection fields reach ``iris.dbapi.connect``; rows come back as tuples."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.fake_iris import FakeIrisServer

CONN = {"conn_type": "iris", "host": "iris.test", "port": 1972, "schema": "USER",
        "login": "ct", "password": "fake-password"}


@pytest.fixture
def hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import iris.dbapi

    from ct_operators.hooks.iris import IrisHook

    server = FakeIrisServer(tmp_path / "fake_iris.db")
    monkeypatch.setattr(iris.dbapi, "connect", server.dbapi.connect)
    monkeypatch.setenv("AIRFLOW_CONN_IRIS_DEFAULT", json.dumps(CONN))
    return IrisHook()


def test_hook_runs_bound_queries_and_returns_tuples(hook) -> None:
    rows = hook.get_records("SELECT ? AS a, ? AS b", parameters=(1, "x"))
    assert rows == [(1, "x")]
    assert hook.get_first("SELECT ? AS a", parameters=(2,)) == (2,)
    assert hook.test_connection() == (True, "Connection successfully tested")


def test_hook_feature_store_uses_same_connection(hook, monkeypatch: pytest.MonkeyPatch) -> None:
    store = hook.get_feature_store()
    assert store.connect_kwargs["namespace"] == "USER" and store.connect_kwargs["hostname"] == "iris.test"


def test_hook_metadata() -> None:
    from ct_operators.hooks.iris import IrisHook

    assert (IrisHook.conn_type, IrisHook.conn_name_attr, IrisHook.default_conn_name) == \
        ("iris", "iris_conn_id", "iris_default")
    behaviour = IrisHook.get_ui_field_behaviour()
    assert behaviour["relabeling"]["schema"] == "Namespace"
    assert behaviour["placeholders"]["port"] == "1972"
