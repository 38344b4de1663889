"""Open the feature store named by a connection (Airflow's or an ``AIRFLOW_CONN_*`` variable)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import unquote, urlsplit

from ct_operators.config import ConfigError, Settings
from ct_operators.store.base import FeatureStore, FeatureStoreError


@dataclass(frozen=True)
class StoreConnection:
    """The parts of a connection the feature store needs (mirrors Airflow's Connection)."""

    conn_type: str
    host: str | None = None
    port: int | None = None
    schema: str | None = None
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    extra: Mapping[str, Any] = field(default_factory=dict)


def open_store(conn: StoreConnection) -> FeatureStore:
    if conn.conn_type == "sqlite":
        if not conn.host:
            raise FeatureStoreError("sqlite feature-store connection has no host: set it to the database file path")
        from ct_operators.store.sqlite import SqliteFeatureStore

        return SqliteFeatureStore(Path(conn.host))
    if conn.conn_type == "iris":
        from ct_operators.store.iris import IrisFeatureStore

        return IrisFeatureStore.from_connection(conn)
    raise FeatureStoreError(
        f"feature-store connection type {conn.conn_type!r} is not supported; use 'sqlite' or 'iris'")


def parse_connection(value: str) -> StoreConnection:
    """Parse an ``AIRFLOW_CONN_*`` value: Airflow's JSON form or its URI form."""
    value = value.strip()
    if value.startswith("{"):
        data = json.loads(value)
        return StoreConnection(
            conn_type=data.get("conn_type", ""), host=data.get("host"), port=data.get("port"),
            schema=data.get("schema"), login=data.get("login"), password=data.get("password"),
            extra=data.get("extra") or {})
    parts = urlsplit(value)
    host = unquote(parts.hostname or "") or None
    if parts.scheme == "sqlite":  # sqlite:////abs/path.db (Airflow puts the path in host)
        host = unquote(parts.netloc + parts.path)
        host = host[1:] if host.startswith("//") else host
    return StoreConnection(conn_type=parts.scheme.replace("-", "_"), host=host, port=parts.port,
                           schema=unquote(parts.path.lstrip("/")) or None if parts.scheme != "sqlite" else None,
                           login=unquote(parts.username) if parts.username else None,
                           password=unquote(parts.password) if parts.password else None)


def store_from_environment(settings: Settings, environ: Mapping[str, str] | None = None) -> FeatureStore:
    """Outside Airflow (CLI, Python API): the same ``AIRFLOW_CONN_<ID>`` variable, else embedded SQLite."""
    env = os.environ if environ is None else environ
    var = f"AIRFLOW_CONN_{settings.feature_store_conn_id.upper()}"
    if var in env:
        try:
            conn = parse_connection(env[var])
        except ValueError as exc:  # malformed JSON or URI: name the variable, never echo its value
            raise ConfigError(f"environment variable {var} is not a valid connection (JSON or URI): "
                              f"{type(exc).__name__} at {getattr(exc, 'pos', '?')}") from None
        return open_store(conn)
    return open_store(StoreConnection(conn_type="sqlite", host=str(settings.sqlite_path)))
