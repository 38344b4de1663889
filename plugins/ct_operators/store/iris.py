"""InterSystems IRIS feature store: the same interface over ``iris.dbapi`` and the IRIS native API.

Why it differs from SQLite, and only there:

* The serving pointer lives in the global ``^ML.Config("ModelPath")`` (written with the native API),
  where the reference IRIS system and any ObjectScript code read it.
* IRIS has neither named nor numbered parameters, so a statement that needs one value twice (the
  insert-if-absent statements) or in another place (``TOP ?`` comes before ``WHERE``) declares, in
  a ``-- binds:`` header line, which of the SQLite-order parameters it binds, in what order. The
  callers pass the same parameters for both dialects; :class:`BindingCursor` reorders them.
* Samples by id are read in chunks through a statement with a fixed number of ``?`` placeholders.

Pure logic: no Airflow import here (``hooks/iris.py`` is the Airflow side).
"""
from __future__ import annotations

import importlib
import re
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

from ct_operators.store.base import SERVING_POINTER_KEY, SQL_ROOT, FeatureStore, FeatureStoreError, SqlLibrary

if TYPE_CHECKING:
    from ct_operators.store.factory import StoreConnection

DEFAULT_PORT = 1972
DEFAULT_NAMESPACE = "USER"
DEFAULT_TIMEOUT_S = 10
CONFIG_GLOBAL = "ML.Config"  # ^ML.Config; the native SDK takes global names without the caret
_BINDS = re.compile(r"^--\s*binds:\s*(?P<order>\d+(?:[\s,]+\d+)*)(?:\s+\(.*\))?$", re.IGNORECASE)


class IrisSqlLibrary(SqlLibrary):
    """IRIS statements without their comment lines, plus each statement's ``-- binds:`` order."""

    def __init__(self, dialect: str = "iris", root: Path = SQL_ROOT) -> None:
        super().__init__(dialect, root)
        self.bindings: dict[str, tuple[int, ...]] = {}

    def __getitem__(self, name: str) -> str:
        if name not in self._cache:
            text = super().__getitem__(name)
            order: tuple[int, ...] | None = None
            body = []
            for line in text.splitlines():
                match = _BINDS.match(line.strip())
                if re.match(r"^--\s*binds:", line.strip(), re.IGNORECASE) and not match:
                    raise FeatureStoreError(f"{self.folder / name}.sql: malformed '-- binds:' line {line!r}")
                if match:
                    order = tuple(int(p) - 1 for p in re.split(r"[\s,]+", match["order"].strip()))
                    if min(order) < 0:
                        raise FeatureStoreError(f"{self.folder / name}.sql: '-- binds:' positions start at 1")
                elif not line.strip().startswith("--"):
                    body.append(line)
            sql = "\n".join(body).strip()
            self._cache[name] = sql
            if order is not None:
                self.bindings[sql] = order
        return self._cache[name]

    def placeholder_count(self, name: str) -> int:
        return self[name].count("?")


class BindingCursor:
    """A DB-API cursor that binds each statement's declared parameter order and returns tuples.

    IRIS rows are ``DataRow`` objects, not tuples; the feature store hands tuples to its callers.
    """

    def __init__(self, cursor: Any, bindings: Mapping[str, tuple[int, ...]]) -> None:
        self._cursor = cursor
        self._bindings = bindings

    def _bind(self, sql: str, params: Sequence[Any]) -> tuple:
        order = self._bindings.get(sql)
        params = tuple(params)
        if order is None:
            return params
        if max(order) >= len(params):
            raise FeatureStoreError(f"statement binds parameter {max(order) + 1} but got {len(params)}")
        return tuple(params[i] for i in order)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        bound = self._bind(sql, params)
        return self._cursor.execute(sql, bound) if bound else self._cursor.execute(sql)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any:
        return self._cursor.executemany(sql, [self._bind(sql, r) for r in rows])

    def fetchall(self) -> list[tuple]:
        return [tuple(r) for r in self._cursor.fetchall()]

    def fetchone(self) -> tuple | None:
        row = self._cursor.fetchone()
        return None if row is None else tuple(row)

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def close(self) -> None:
        self._cursor.close()


def iris_connect_kwargs(conn: "StoreConnection") -> dict[str, Any]:
    """Keyword arguments of ``iris.dbapi.connect`` for a connection (Airflow field names → IRIS names)."""
    if not conn.host:
        raise FeatureStoreError("iris feature-store connection has no host")
    if not conn.login:
        raise FeatureStoreError("iris feature-store connection has no login (IRIS user name)")
    extra = dict(conn.extra or {})
    return {
        "hostname": conn.host,
        "port": int(conn.port or DEFAULT_PORT),
        "namespace": conn.schema or DEFAULT_NAMESPACE,
        "username": conn.login,
        "password": conn.password or "",
        "timeout": int(extra.get("timeout", DEFAULT_TIMEOUT_S)),
    }


class IrisFeatureStore(FeatureStore):
    """Feature store in an IRIS namespace; ``dbapi``/``native`` are injectable for tests (default: ``iris``)."""

    dialect = "iris"
    ID_CHUNK_STATEMENT = "select_samples_by_ids"

    def __init__(self, connect_kwargs: Mapping[str, Any], dbapi: Any = None, native: Any = None) -> None:
        super().__init__()
        self.sql: IrisSqlLibrary = IrisSqlLibrary(self.dialect)
        self.connect_kwargs = dict(connect_kwargs)
        self._dbapi = dbapi
        self._native = native

    @classmethod
    def from_connection(cls, conn: "StoreConnection", dbapi: Any = None, native: Any = None) -> "IrisFeatureStore":
        return cls(iris_connect_kwargs(conn), dbapi=dbapi, native=native)

    # -- drivers (imported lazily so the package imports without the IRIS client) ------
    @property
    def dbapi(self) -> Any:
        if self._dbapi is None:
            self._dbapi = _import_driver("iris.dbapi")
        return self._dbapi

    @property
    def native(self) -> Any:
        if self._native is None:
            self._native = _import_driver("iris")
        return self._native

    # -- dialect hooks -----------------------------------------------------------------
    def connect(self) -> Any:
        """One connection per transaction; autocommit off so ``transaction()`` commits or rolls back."""
        try:
            conn = self.dbapi.connect(**self.connect_kwargs)
        except Exception as exc:  # the driver raises its own error types; name where we tried
            where = f"{self.connect_kwargs['hostname']}:{self.connect_kwargs['port']}/{self.connect_kwargs['namespace']}"
            raise FeatureStoreError(f"cannot connect to IRIS at {where} as "
                                    f"{self.connect_kwargs['username']!r}: {exc}") from exc
        conn.autocommit = False
        return conn

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[Any]:
        """The base transaction, with a cursor that binds IRIS parameter orders and returns tuples."""
        with super().transaction(write) as cursor:
            yield BindingCursor(cursor, self.sql.bindings)

    def select_samples_by_ids(self, cursor: Any, ids: Sequence[int]) -> list[tuple]:
        """Bound parameters only: a fixed-size ``IN (?, ..., ?)`` per chunk, short chunks padded."""
        wanted = sorted({int(i) for i in ids})
        if not wanted:
            return []
        sql = self.sql[self.ID_CHUNK_STATEMENT]
        size = self.sql.placeholder_count(self.ID_CHUNK_STATEMENT)
        rows: list[tuple] = []
        for start in range(0, len(wanted), size):
            chunk = wanted[start:start + size]
            cursor.execute(sql, tuple(chunk + [chunk[-1]] * (size - len(chunk))))
            rows.extend(tuple(r) for r in cursor.fetchall())
        return sorted(rows, key=lambda r: int(r[0]))

    # -- serving pointer: the ^ML.Config("ModelPath") global ---------------------------
    def get_serving_pointer(self) -> str | None:
        value = self._with_native(lambda db: db.get(CONFIG_GLOBAL, SERVING_POINTER_KEY))
        return None if value is None else str(value)

    def set_serving_pointer(self, model_uri: str) -> None:
        if not model_uri:
            raise FeatureStoreError("refusing to set an empty serving pointer")
        self._with_native(lambda db: db.set(str(model_uri), CONFIG_GLOBAL, SERVING_POINTER_KEY))

    def _with_native(self, action: Any) -> Any:
        conn = self.connect()
        try:
            result = action(self.native.createIRIS(conn))
            conn.commit()
            return result
        finally:
            conn.close()

    def __repr__(self) -> str:
        k = self.connect_kwargs
        return f"IrisFeatureStore({k['username']}@{k['hostname']}:{k['port']}/{k['namespace']})"


def _import_driver(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise FeatureStoreError(
            f"the IRIS client {name!r} is not installed: pip install intersystems-irispython") from exc
