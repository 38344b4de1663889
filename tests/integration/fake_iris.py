"""A fake of ``iris.dbapi`` and the IRIS native API, backed by one SQLite file, for contract tests.

What it follows from the documented ``intersystems-irispython`` API (checked against the installed
package): ``connect(hostname=, port=, namespace=, username=, password=, timeout=, ...)`` keyword
names, qmark parameters (``paramstyle = "qmark"``), autocommit off with ``commit``/``rollback``,
``fetchall`` returning a tuple of ``DataRow`` objects that are *not* tuples (index, slice, column
name), ``rowcount``, and ``createIRIS(conn)`` with ``set(value, global, *subs)``, ``get``,
``isDefined`` and ``kill`` on globals named without the caret.

Translation IRIS SQL → SQLite, only what the ``include/sql/iris`` files need to run:
  * ``BIGINT IDENTITY PRIMARY KEY`` → ``INTEGER PRIMARY KEY AUTOINCREMENT``
  * ``COLLATE %EXACT`` → ``COLLATE BINARY`` (both case-sensitive, byte order)
  * ``INSERT OR UPDATE INTO t (c...) VALUES (...)`` → ``INSERT ... ON CONFLICT DO UPDATE SET c = excluded.c``
  * ``SELECT TOP ? ...`` → ``SELECT ... LIMIT ?`` with the first parameter moved to the end

Table locks (``LOCK TABLE t IN EXCLUSIVE MODE [WAIT n]`` / ``UNLOCK TABLE t IN EXCLUSIVE MODE [IMMEDIATE]``)
follow the documented semantics with an OS file lock per table shared by all connections: a second
locker waits up to ``n`` seconds (``lock_wait_cap_s`` may shorten it in tests), then fails with SQLCODE
-110; an UNLOCK inside a transaction is deferred to its end; closing the connection releases everything.
They are taken before, and apart from, the SQLite transaction the fake opens for the next statement.

What it does NOT emulate (so passing here proves the Python side and the statements' logic, not
that IRIS accepts them): IRIS's SQL parser and reserved words, type conversion and parameter type
inference (e.g. ``?`` in a select list), DDL support such as ``CREATE INDEX IF NOT EXISTS``,
isolation levels and row locking (SQLite serialises writers with one database lock), SQLCODE error
numbers and the driver's exception classes, ``executemany`` row counts, transactions around global
sets (native-API writes here commit at once, as they do in IRIS outside TSTART), and subscripted
global iteration.
"""
from __future__ import annotations

import fcntl
import json
import re
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any, Iterator, Sequence

paramstyle = "qmark"
apilevel = "2.0"


class Error(Exception):
    """Base of the fake driver's errors (the real driver has the PEP 249 hierarchy)."""


class OperationalError(Error):
    """Connection refused: wrong address, namespace or credentials."""


class ProgrammingError(Error):
    """A statement the fake cannot run (e.g. non-qmark parameters)."""


class DataRow:
    """Row like ``iris.dbapi.DataRow``: indexable by position, slice or column name; not a tuple."""

    __slots__ = ("_values", "_names")

    def __init__(self, values: Sequence[Any], names: Sequence[str]) -> None:
        self._values = list(values)
        self._names = [n.lower() for n in names]

    def __getitem__(self, key: int | str | slice) -> Any:
        if isinstance(key, str):
            return self._values[self._names.index(key.lower())]
        if isinstance(key, slice):
            return self._values[key]
        return self._values[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"DataRow({self._values!r})"


_IDENTITY = re.compile(r"\bBIGINT\s+IDENTITY\s+PRIMARY\s+KEY\b", re.IGNORECASE)
_EXACT = re.compile(r"\bCOLLATE\s+%EXACT\b", re.IGNORECASE)
_UPSERT = re.compile(r"^\s*INSERT\s+OR\s+UPDATE\s+INTO\s+(\w+)\s*\(([^)]*)\)\s*(VALUES\s*\(.*\))\s*$",
                     re.IGNORECASE | re.DOTALL)
_LOCK = re.compile(r"^\s*LOCK\s+(?:TABLE\s+)?(\w+)\s+IN\s+EXCLUSIVE\s+MODE(?:\s+WAIT\s+(\d+))?\s*$",
                   re.IGNORECASE)
_UNLOCK = re.compile(r"^\s*UNLOCK\s+(?:TABLE\s+)?(\w+)\s+IN\s+EXCLUSIVE\s+MODE(\s+IMMEDIATE)?\s*$", re.IGNORECASE)
DEFAULT_LOCK_TIMEOUT_S = 10
_TOP = re.compile(r"^(\s*SELECT\s+)TOP\s+\?\s+", re.IGNORECASE)


def translate(sql: str, params: Sequence[Any]) -> tuple[str, tuple]:
    """IRIS SQL → SQLite for the constructs listed in the module docstring; anything else unchanged."""
    params = tuple(params)
    sql = _EXACT.sub("COLLATE BINARY", _IDENTITY.sub("INTEGER PRIMARY KEY AUTOINCREMENT", sql))
    upsert = _UPSERT.match(sql)
    if upsert:
        table, cols, values = upsert.groups()
        names = [c.strip() for c in cols.split(",")]
        sets = ", ".join(f"{c} = excluded.{c}" for c in names)
        sql = f"INSERT INTO {table} ({', '.join(names)}) {values} ON CONFLICT DO UPDATE SET {sets}"
    if _TOP.match(sql):
        if not params:
            raise ProgrammingError("TOP ? needs a parameter")
        sql = _TOP.sub(r"\1", sql).rstrip() + "\nLIMIT ?"
        params = params[1:] + params[:1]
    return sql, params


class Cursor:
    def __init__(self, conn: "Connection") -> None:
        self._conn = conn
        self._cur = conn._db.cursor()
        self._rows: list[DataRow] = []
        self.description: tuple | None = None
        self.arraysize = 1
        self.rowcount = -1

    def _check(self, params: Any) -> tuple:
        if params is None:
            return ()
        if isinstance(params, dict):
            raise ProgrammingError("the fake supports qmark (positional) parameters only")
        return tuple(params)

    def _run(self, sql: str, params: tuple) -> None:
        self._conn._begin()
        try:
            self._cur.execute(sql, params)
        except sqlite3.Error as exc:
            raise Error(f"{exc} (SQL after translation: {sql})") from exc

    def execute(self, operation: str, parameters: Any = None) -> int:
        lock, unlock = _LOCK.match(operation), _UNLOCK.match(operation)
        if lock or unlock:
            if lock:
                self._conn.lock_table(lock[1], float(lock[2]) if lock[2] else DEFAULT_LOCK_TIMEOUT_S)
            else:
                self._conn.unlock_table(unlock[1], immediate=bool(unlock[2]))
            self._rows, self.description, self.rowcount = [], None, 0
            return 0
        sql, params = translate(operation, self._check(parameters))
        self._run(sql, params)
        self.description = self._cur.description
        names = [d[0] for d in self._cur.description or ()]
        self._rows = [DataRow(r, names) for r in self._cur.fetchall()] if self._cur.description else []
        self.rowcount = self._cur.rowcount
        return self.rowcount

    def executemany(self, operation: str, seq_of_parameters: Sequence[Sequence[Any]]) -> tuple:
        total = 0
        for parameters in seq_of_parameters:
            sql, params = translate(operation, self._check(parameters))
            self._run(sql, params)
            total += max(self._cur.rowcount, 0)
        self._rows = []
        self.rowcount = total  # summed like sqlite3; the real driver's value is not verified here
        return ()

    def fetchone(self) -> DataRow | None:
        return self._rows.pop(0) if self._rows else None

    def fetchall(self) -> tuple:
        rows, self._rows = tuple(self._rows), []
        return rows

    def fetchmany(self, size: int | None = None) -> tuple:
        n = size or self.arraysize
        rows, self._rows = tuple(self._rows[:n]), self._rows[n:]
        return rows

    def close(self) -> None:
        self._cur.close()


class Connection:
    def __init__(self, path: Path, lock_wait_cap_s: float | None = None) -> None:
        self._path = path
        self._db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
        self._db.execute("PRAGMA foreign_keys=ON")
        self._autocommit = False
        self._closed = False
        self._lock_wait_cap_s = lock_wait_cap_s
        self._locks: dict[str, Any] = {}  # table -> open lock file (flock held)
        self._release_at_end: set[str] = set()

    def lock_table(self, table: str, wait_s: float) -> None:
        table = table.lower()
        if table in self._locks:
            return  # this process holds it already
        wait_s = min(wait_s, self._lock_wait_cap_s) if self._lock_wait_cap_s is not None else wait_s
        handle = open(f"{self._path}.lock-{table}", "a+b")
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.close()
                    raise OperationalError(f"[SQLCODE: <-110>:<Lock timed out>] table '{table}' is locked "
                                           f"by another process (waited {wait_s:g} s)") from None
                time.sleep(0.02)
        self._locks[table] = handle
        self._release_at_end.discard(table)

    def unlock_table(self, table: str, immediate: bool = False) -> None:
        table = table.lower()
        if immediate or not self._db.in_transaction:
            self._release(table)
        elif table in self._locks:
            self._release_at_end.add(table)

    def _release(self, table: str) -> None:
        handle = self._locks.pop(table, None)
        self._release_at_end.discard(table)
        if handle is not None:
            handle.close()  # closing the file drops the flock

    def _end_transaction(self) -> None:
        for table in list(self._release_at_end):
            self._release(table)

    def _begin(self) -> None:
        if self._closed:
            raise Error("connection is closed")
        if not self._autocommit and not self._db.in_transaction:
            self._db.execute("BEGIN IMMEDIATE")

    @property
    def autocommit(self) -> bool:
        return self._autocommit

    @autocommit.setter
    def autocommit(self, value: bool) -> None:
        self.setAutoCommit(value)

    def setAutoCommit(self, value: bool) -> None:
        if value and self._db.in_transaction:
            self._db.commit()
        self._autocommit = bool(value)

    def cursor(self) -> Cursor:
        return Cursor(self)

    def commit(self) -> None:
        if self._db.in_transaction:
            self._db.commit()
        self._end_transaction()

    def rollback(self) -> None:
        if self._db.in_transaction:
            self._db.rollback()
        self._end_transaction()

    def close(self) -> None:
        if not self._closed:
            self.rollback()
            for table in list(self._locks):  # the server process ends: every lock it held goes
                self._release(table)
            self._db.close()
            self._closed = True

    def isClosed(self) -> bool:
        return self._closed


class NativeIRIS:
    """``iris.IRIS`` for globals; values keep their Python type (str, int, float, bytes)."""

    def __init__(self, conn: Connection) -> None:
        if conn.isClosed():
            raise Error("createIRIS: the connection is closed")
        self._path = conn._path
        self._run("CREATE TABLE IF NOT EXISTS fake_iris_globals "
                  "(name TEXT NOT NULL, subs TEXT NOT NULL, value, PRIMARY KEY (name, subs))", ())

    def _run(self, sql: str, params: tuple) -> list[tuple]:
        """One short autocommit connection per call: a global set is durable at once, as in IRIS."""
        with closing(sqlite3.connect(self._path, timeout=30.0, isolation_level=None)) as db:
            return db.execute(sql, params).fetchall()

    @staticmethod
    def _key(global_name: str, subscripts: Sequence[Any]) -> tuple[str, str]:
        if not global_name or global_name.startswith("^"):
            raise Error(f"global name {global_name!r}: the native SDK takes the name without the caret")
        return global_name, json.dumps([str(s) for s in subscripts])

    def set(self, value: Any, global_name: str, *subscripts: Any) -> None:
        if not isinstance(value, (str, int, float, bytes, bool)):
            raise Error(f"unsupported global value type {type(value).__name__}")
        name, subs = self._key(global_name, subscripts)
        self._run("INSERT INTO fake_iris_globals (name, subs, value) VALUES (?, ?, ?) "
                  "ON CONFLICT (name, subs) DO UPDATE SET value = excluded.value", (name, subs, value))

    def get(self, global_name: str, *subscripts: Any) -> Any:
        name, subs = self._key(global_name, subscripts)
        rows = self._run("SELECT value FROM fake_iris_globals WHERE name = ? AND subs = ?", (name, subs))
        return rows[0][0] if rows else None

    def isDefined(self, global_name: str, *subscripts: Any) -> int:
        return 0 if self.get(global_name, *subscripts) is None else 1

    def kill(self, global_name: str, *subscripts: Any) -> None:
        name, subs = self._key(global_name, subscripts)
        prefix = subs[:-1]  # descendants too: their JSON subscript list starts with ours
        self._run("DELETE FROM fake_iris_globals WHERE name = ? AND (subs = ? OR subs LIKE ?)",
                  (name, subs, (prefix + ",%") if subscripts else "%"))

    def close(self) -> None:
        """Nothing to release: every call used its own short connection."""


class FakeIrisServer:
    """One fake instance: an address, a namespace, one user; ``.dbapi`` and ``.native`` are the modules."""

    def __init__(self, path: Path, hostname: str = "iris.test", port: int = 1972, namespace: str = "USER",
                 username: str = "ct", password: str = "fake-password", lock_wait_cap_s: float | None = None) -> None:
        self.path = Path(path)
        self.lock_wait_cap_s = lock_wait_cap_s
        self.address = (hostname, int(port), namespace.upper())
        self.credentials = (username, password)
        self.dbapi = _Module(paramstyle=paramstyle, apilevel=apilevel, connect=self.connect, Error=Error,
                             OperationalError=OperationalError, ProgrammingError=ProgrammingError,
                             DataRow=DataRow)
        self.native = _Module(createIRIS=NativeIRIS, connect=self.connect)

    def connect(self, hostname: str, port: int, namespace: str, username: str, password: str,
                timeout: int = 10, sharedmemory: bool = True, logfile: str | None = None,
                sslconfig: str | None = None, autoCommit: bool = False, isolationLevel: int | None = None,
                featureOptions: int | None = None) -> Connection:
        if (hostname, int(port), str(namespace).upper()) != self.address:
            raise OperationalError(f"no IRIS at {hostname}:{port}/{namespace}")
        if (username, password) != self.credentials:
            raise OperationalError("Access Denied")
        conn = Connection(self.path, self.lock_wait_cap_s)
        conn.setAutoCommit(autoCommit)
        return conn


class _Module:
    def __init__(self, **attrs: Any) -> None:
        self.__dict__.update(attrs)
