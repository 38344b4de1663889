"""Reliability helpers: real components only (SQLite files, a real ``mlflow server`` process, the pure
``ct_training`` steps, subprocesses for the CLI and for Airflow).

* ``mlflow_server`` (session): one ``mlflow server`` on 127.0.0.1 and a free port, SQLite backend and a
  local artifact root; ``stop()`` kills it like a crash (SIGKILL of its process group), ``start()``
  brings it back on the same port and stores. Tests that use it get their own registered model name.
* every test in this folder runs with ``MLFLOW_HTTP_REQUEST_MAX_RETRIES=1`` and a short
  ``MLFLOW_HTTP_REQUEST_TIMEOUT``, so a stopped server fails a call in seconds, not minutes.
* ``TracedSqliteStore``: a ``SqliteFeatureStore`` that records every SQL statement run on its
  connections (``sqlite3.Connection.set_trace_callback``), to prove no statement beyond the intended one ran.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any, Callable

from ct_operators import registry
from ct_operators.config import PROJECT_ROOT, Settings, load_settings

SEED_CSV = PROJECT_ROOT / "include" / "data" / "point_samples.csv"
VENV_BIN = Path(sys.executable).parent
TABLES = ("point_samples", "predictions", "ml_config", "training_runs", "retrain_triggers")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MlflowServer:
    """A real ``mlflow server`` process; stop() is a crash (SIGKILL), start() a restart on the same stores."""

    def __init__(self, root: Path, serve_artifacts: bool = False) -> None:
        self.root = root
        self.serve_artifacts = serve_artifacts  # as deployed: artifacts go through the server (HTTP PUT/GET)
        self.root.mkdir(parents=True, exist_ok=True)
        self.db = root / "mlflow.db"
        self.artifacts = root / "artifacts"
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.starts = 0

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.uri + "/health", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def start(self, timeout_s: float = 420.0) -> None:
        self.starts += 1
        log = open(self.root / f"server-{self.starts}.log", "ab")
        artifacts = (["--serve-artifacts", "--artifacts-destination", str(self.artifacts)] if self.serve_artifacts
                     else ["--default-artifact-root", str(self.artifacts)])
        self.process = subprocess.Popen(
            [str(VENV_BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{self.db}", *artifacts,
             "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.root)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {self.process.returncode}:\n{self.log_tail()}")
            if self.healthy():
                return
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"mlflow server not healthy after {timeout_s:.0f}s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGKILL the server's own process group (it was started in a new session) and wait for it."""
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=60)
        deadline = time.monotonic() + 30
        while self.healthy() and time.monotonic() < deadline:  # a worker child may take a moment to go
            time.sleep(0.2)

    def log_tail(self, chars: int = 4000) -> str:
        logs = sorted(self.root.glob("server-*.log"))
        return logs[-1].read_text(errors="replace")[-chars:] if logs else ""


def server_settings(server: MlflowServer, data_dir: Path, model: str) -> Settings:
    """Settings on the server, with a registered model and experiments of the test's own."""
    return load_settings({"data_dir": str(data_dir), "mlflow_tracking_uri": server.uri,
                          "registered_model_name": model, "training_experiment": f"{model}_training",
                          "monitoring_experiment": f"{model}_monitoring"}, environ={})


def local_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings on a local SQLite MLflow store under ``data_dir``."""
    return load_settings({"data_dir": str(data_dir), **overrides}, environ={})


def new_store(path: Path, seed: bool = True, busy_timeout_s: float | None = None):
    from ct_operators.store.sqlite import SqliteFeatureStore

    store = SqliteFeatureStore(path) if busy_timeout_s is None else SqliteFeatureStore(path, busy_timeout_s)
    store.init_schema()
    if seed:
        store.load_seed_csv(SEED_CSV)
    return store


def train_steps(settings: Settings, store: Any, run_id: str, evaluate: bool = False) -> dict:
    """extract -> validate -> prepare -> train -> (evaluate) -> validate_model with the real steps."""
    from ct_operators.events import RunIds
    from ct_operators.store.types import TimeWindow
    from ct_operators.training import steps

    ids = RunIds(dag_id="ct_training", run_id=run_id)
    extracted = steps.extract(settings, store, ids, TimeWindow())
    prepared = steps.prepare(settings, ids, steps.validate_data(settings, ids, extracted))
    trained = steps.train(settings, ids, prepared)
    if evaluate:
        steps.evaluate(settings, ids, prepared, trained)
    decision = steps.validate_model(settings, ids, prepared, trained)
    return {"ids": ids, "prepared": prepared, "trained": trained, "decision": decision}


def train_and_promote(settings: Settings, store: Any, run_id: str | None = None) -> dict:
    from ct_operators.training import steps

    out = train_steps(settings, store, run_id or f"manual__{uuid.uuid4().hex[:10]}")
    out["promoted"] = steps.promote(settings, store, out["ids"], out["decision"])
    return out


def table_counts(db: Path) -> dict[str, int]:
    with closing(sqlite3.connect(db)) as conn:
        names = sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
        return {name: conn.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0] for name in names}


def schema_of(db: Path) -> list[tuple]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name").fetchall()


def cli(env: dict[str, str], *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ct_operators", *args], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=timeout)


def cli_env(data_dir: Path, db: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CT_", "MLFLOW_"))}
    env.update({"CT_DATA_DIR": str(data_dir),
                "AIRFLOW_CONN_CT_FEATURE_STORE": json.dumps({"conn_type": "sqlite", "host": str(db)}),
                "PYTHONPATH": str(PROJECT_ROOT / "plugins"), **extra})
    return env


def make_traced_store(path: Path):
    """A SqliteFeatureStore whose connections report every statement they run into ``store.statements``."""
    from ct_operators.store.sqlite import SqliteFeatureStore

    class TracedSqliteStore(SqliteFeatureStore):
        def __init__(self, p: Path) -> None:
            super().__init__(p)
            self.statements: list[str] = []

        def connect(self) -> Any:
            conn = super().connect()
            conn.set_trace_callback(self.statements.append)
            return conn

        def data_statements(self) -> list[str]:
            """Statements other than transaction control and the connection PRAGMAs."""
            skip = ("BEGIN", "COMMIT", "ROLLBACK", "PRAGMA")
            return [s for s in self.statements if not s.lstrip().upper().startswith(skip)]

    store = TracedSqliteStore(path)
    store.init_schema()
    store.statements.clear()
    return store


class Champion:
    """A model trained through the MLflow server by the real steps.

    v1 is promoted (alias ``champion`` and the serving pointer of ``store``); v2 is trained, not promoted.
    """

    def __init__(self, server, root: Path) -> None:
        self.server = server
        self.settings = server_settings(server, root / "data", "ct_reliability_model")
        self.store = new_store(self.settings.sqlite_path)
        first = train_and_promote(self.settings, self.store, "manual__v1")
        assert first["promoted"]["promoted"] and first["promoted"]["model_version"] == "1", first["promoted"]
        self.second = train_steps(self.settings, self.store, "manual__v2")
        assert self.second["trained"]["model_version"] == "2"

    def client(self):
        return registry.connect(self.settings)

    def alias(self, alias: str | None = None) -> str | None:
        ref = registry.version_by_alias(self.client(), self.settings.registered_model_name,
                                        alias or self.settings.champion_alias)
        return ref.version if ref else None

    def pointer(self) -> str | None:
        return self.store.get_serving_pointer()

    def uri(self, version: str) -> str:
        return f"models:/{self.settings.registered_model_name}/{version}"

    def predicted_versions(self) -> dict[str, int]:
        with closing(sqlite3.connect(self.store.path)) as conn:
            return dict(conn.execute("SELECT model_version, COUNT(*) FROM predictions GROUP BY model_version"))


METHODS = {b"GET", b"POST", b"PUT", b"PATCH", b"DELETE", b"HEAD"}


class KillingProxy:
    """A TCP proxy in front of an ``MlflowServer`` that crashes the server in the middle of one request.

    ``arm(pattern, when)`` picks the first request whose bytes match the regular expression ``pattern`` (e.g.
    ``rb"POST /api/2.0/mlflow/model-versions/create"``):

    * ``when="request"``: the server gets only the first part of that request, then is killed (SIGKILL);
    * ``when="response"``: the server gets the whole request and answers it, then is killed before the
      client sees a byte of the answer (the server did the work; the client cannot know).

    Afterwards every new connection is closed at once, as nothing listens upstream.
    ``requests`` lists every request line seen, for the test's assertions and messages.
    """

    def __init__(self, server: "MlflowServer") -> None:
        import threading

        self.server = server
        self.port = free_port()
        self.requests: list[str] = []
        self.fired = threading.Event()
        self._pattern: re.Pattern[bytes] | None = None
        self._on_fire: "Callable[[], None] | None" = None
        self._when = "request"
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def arm(self, pattern: bytes, when: str, crash: "Callable[[], None] | None" = None) -> None:
        """``crash`` replaces the default (SIGKILL the server), e.g. to kill the client's process instead."""
        assert when in {"request", "response"}, when
        self._pattern, self._when, self._on_fire = re.compile(pattern), when, crash
        self.fired.clear()

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        import threading

        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        import threading

        try:
            upstream = socket.create_connection(("127.0.0.1", self.server.port), timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        state = {"hold_response": False}
        threading.Thread(target=self._pump_responses, args=(upstream, client, state), daemon=True).start()
        current = b""  # the current request so far (head and body may arrive in several reads)
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                if data.split(b" ", 1)[0] in METHODS:
                    current = b""
                    self.requests.append(data.split(b"\r\n", 1)[0].decode("latin-1"))
                current = (current + data)[-(1 << 20):]
                hit = self._take(current)
                if hit and self._when == "request":
                    head_end = data.find(b"\r\n\r\n")
                    upstream.sendall(data[: max(head_end, len(data) // 2)])  # only part of the request
                    self._crash(upstream, client)
                    return
                if hit:
                    state["hold_response"] = True  # the response thread kills the server on its first byte
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.close()

    def _take(self, data: bytes) -> bool:
        with self._lock:
            if self._pattern is not None and not self.fired.is_set() and self._pattern.search(data):
                self.fired.set()
                return True
        return False

    def _pump_responses(self, upstream: socket.socket, client: socket.socket, state: dict) -> None:
        try:
            while True:
                data = upstream.recv(65536)
                if not data:
                    break
                if state["hold_response"]:
                    self._crash(upstream, client)
                    return
                client.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                client.close()

    def _crash(self, upstream: socket.socket, client: socket.socket) -> None:
        (self._on_fire or self.server.stop)()
        for sock in (upstream, client):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
