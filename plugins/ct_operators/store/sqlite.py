"""SQLite feature store: the embedded default. WAL mode and a busy timeout let parallel tasks share it."""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from ct_operators.store.base import FeatureStore, FeatureStoreError

BUSY_TIMEOUT_S = 30.0


class SqliteFeatureStore(FeatureStore):
    dialect = "sqlite"

    def __init__(self, path: Path | str, busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        super().__init__()
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def connect(self) -> Any:
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def begin_write(self, cursor: Any) -> None:
        try:
            cursor.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            raise FeatureStoreError(
                f"feature store {self.path} is locked by another writer: gave up after the busy timeout of "
                f"{self.busy_timeout_s:g} s ({exc}); nothing was written, retry later") from exc

    def begin_read(self, cursor: Any) -> None:
        cursor.execute("BEGIN DEFERRED")  # WAL: reads a snapshot, never waits for (or blocks) a writer

    def __repr__(self) -> str:
        return f"SqliteFeatureStore({str(self.path)!r})"
