"""Fixtures of the reliability suite; the helpers live in ``reliability_support``."""
from __future__ import annotations

from typing import Iterator

import pytest

from reliability_support import Champion, MlflowServer


@pytest.fixture(autouse=True)
def _fast_failing_mlflow_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path_factory.mktemp("mlflow_server"))
    server.start()
    try:
        yield server
    finally:
        server.stop()




@pytest.fixture(scope="session")
def champ(mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> Champion:
    """v1 trained and promoted through the server (champion + serving pointer), v2 trained, not promoted."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")  # the set-up itself may meet a busy server
        return Champion(mlflow_server, tmp_path_factory.mktemp("server_champion"))
