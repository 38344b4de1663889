"""The feature store: one small interface, implemented over any DB-API connection.

SQL comes from ``include/sql/<dialect>/<name>.sql``; every value is a bound parameter.
Dialects differ only in how they connect, begin a write transaction and a few SQL files.
"""
from __future__ import annotations

import csv
import hashlib
import json
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

import pandas as pd

from ct_operators.config import PROJECT_ROOT
from ct_operators.events import utcnow
from ct_operators.store.types import (
    Prediction, Sample, TimeWindow, from_db_ts, require_utc, to_db_ts,
)

SQL_ROOT = PROJECT_ROOT / "include" / "sql"
SAMPLE_COLUMNS = ["id", "x", "y", "label", "event_ts"]
SERVING_POINTER_KEY = "ModelPath"


class FeatureStoreError(RuntimeError):
    """The feature store could not do what was asked; the message says what to check."""


class SqlLibrary:
    """Named SQL statements of one dialect, read once from include/sql/<dialect>/."""

    def __init__(self, dialect: str, root: Path = SQL_ROOT) -> None:
        self.folder = root / dialect
        if not self.folder.is_dir():
            raise FeatureStoreError(f"no SQL folder for dialect {dialect!r} at {self.folder}")
        self._cache: dict[str, str] = {}

    def __getitem__(self, name: str) -> str:
        if name not in self._cache:
            path = self.folder / f"{name}.sql"
            if not path.exists():
                raise FeatureStoreError(f"missing SQL file {path}")
            self._cache[name] = path.read_text(encoding="utf-8").strip().rstrip(";")
        return self._cache[name]

    def statements(self, name: str) -> list[str]:
        """A multi-statement file split on ';' (DDL only; comments stripped)."""
        lines = [ln for ln in self[name].splitlines() if not ln.strip().startswith("--")]
        return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


class FeatureStore:
    """Samples, predictions, the serving pointer and the retraining bookkeeping."""

    dialect = "base"

    def __init__(self) -> None:
        self.sql = SqlLibrary(self.dialect)

    # -- dialect hooks -----------------------------------------------------------------
    def connect(self) -> Any:
        raise NotImplementedError

    def begin_write(self, cursor: Any) -> None:
        """Start a transaction that serialises writers (SQLite: BEGIN IMMEDIATE)."""

    def begin_read(self, cursor: Any) -> None:
        """Start a read transaction that never waits for writers (SQLite WAL: a snapshot)."""

    def get_serving_pointer(self) -> str | None:
        return self.get_config(SERVING_POINTER_KEY)

    def set_serving_pointer(self, model_uri: str) -> None:
        self.set_config(SERVING_POINTER_KEY, model_uri)

    def select_samples_by_ids(self, cursor: Any, ids: Sequence[int]) -> list[tuple]:
        cursor.execute(self.sql["select_samples_by_ids"], (json.dumps([int(i) for i in ids]),))
        return cursor.fetchall()

    # -- plumbing ----------------------------------------------------------------------
    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[Any]:
        """A cursor in one transaction: committed on success, rolled back on any error.

        Reads (``write=False``) do not take the write lock, so a long scoring or monitoring read
        and the drift simulator's insert do not queue behind each other."""
        conn = self.connect()
        try:
            cursor = conn.cursor()
            (self.begin_write if write else self.begin_read)(cursor)
            yield cursor
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()

    def _query(self, name: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self.transaction(write=False) as cur:
            cur.execute(self.sql[name], tuple(params))
            return [tuple(r) for r in cur.fetchall()]

    # -- schema and seed ---------------------------------------------------------------
    def init_schema(self) -> None:
        with self.transaction() as cur:
            for statement in self.sql.statements("schema"):
                cur.execute(statement)

    def load_seed_csv(self, path: Path) -> int:
        """Load a seed CSV once: a second call (same file content) inserts nothing. Returns rows inserted."""
        content = Path(path).read_bytes()
        key = "seed:" + hashlib.sha256(content).hexdigest()[:16]
        samples = parse_samples_csv(content.decode("utf-8"), source=str(path))
        with self.transaction() as cur:
            cur.execute(self.sql["insert_config_if_absent"], (key, str(path), to_db_ts(utcnow())))
            if cur.rowcount == 0:
                return 0
            self._insert_samples(cur, samples)
        return len(samples)

    # -- samples -----------------------------------------------------------------------
    def insert_samples(self, samples: Sequence[Sample]) -> int:
        with self.transaction() as cur:
            self._insert_samples(cur, samples)
        return len(samples)

    def _insert_samples(self, cur: Any, samples: Sequence[Sample]) -> None:
        now = utcnow()
        rows = [(s.x, s.y, s.label, to_db_ts(s.event_ts or now)) for s in samples]
        if rows:
            cur.executemany(self.sql["insert_sample"], rows)

    def fetch_samples(self, window: TimeWindow = TimeWindow()) -> pd.DataFrame:
        return samples_frame(self._query("select_samples_in_window", window.bounds()))

    def fetch_samples_by_ids(self, ids: Sequence[int]) -> pd.DataFrame:
        with self.transaction(write=False) as cur:
            return samples_frame([tuple(r) for r in self.select_samples_by_ids(cur, ids)])

    def fetch_unscored(self, model_name: str, model_version: str, after_id: int, limit: int) -> pd.DataFrame:
        rows = self._query("select_unscored_samples", (int(after_id), model_name, str(model_version), int(limit)))
        return samples_frame(rows)

    def count_samples(self) -> int:
        return int(self._query("count_samples")[0][0])

    def count_predictions(self) -> int:
        return int(self._query("count_predictions")[0][0])

    # -- predictions -------------------------------------------------------------------
    def insert_predictions(self, predictions: Sequence[Prediction]) -> int:
        """Write a batch in one transaction; rows already scored by the same model version are ignored."""
        stamp = _TimestampMemo()  # a batch shares one predicted_at: format it once, not once per row
        rows = [(int(p.sample_id), float(p.predicted), p.model_name, str(p.model_version), p.mlflow_run_id,
                 float(p.inference_ms), stamp(p.predicted_at)) for p in predictions]
        return self._write_prediction_rows(rows)

    def insert_prediction_batch(self, sample_ids: Sequence[int], predicted: Sequence[float], *, model_name: str,
                                model_version: str, mlflow_run_id: str, inference_ms: float,
                                predicted_at: datetime) -> int:
        """The scoring hot path: one model version and timestamp for the whole batch, values as columns."""
        if len(sample_ids) != len(predicted):
            raise ValueError(f"{len(predicted)} predictions for {len(sample_ids)} sample ids")
        shared = (model_name, str(model_version), mlflow_run_id, float(inference_ms), to_db_ts(predicted_at))
        rows = [(int(i), float(p), *shared) for i, p in zip(sample_ids, predicted)]
        return self._write_prediction_rows(rows)

    def _write_prediction_rows(self, rows: list[tuple]) -> int:
        if not rows:
            return 0
        with self.transaction() as cur:
            cur.executemany(self.sql["insert_prediction"], rows)
            written = cur.rowcount
        return int(written) if written is not None and written >= 0 else len(rows)

    def fetch_labelled_predictions(self, model_name: str, model_version: str,
                                   window: TimeWindow = TimeWindow()) -> pd.DataFrame:
        rows = self._query("select_labelled_predictions", (model_name, str(model_version), *window.bounds()))
        frame = pd.DataFrame(rows, columns=["sample_id", "event_ts", "x", "y", "predicted", "predicted_at"])
        for col in ("event_ts", "predicted_at"):
            frame[col] = pd.to_datetime(frame[col], utc=True, format="ISO8601")
        return frame

    # -- key/value config --------------------------------------------------------------
    def get_config(self, key: str) -> str | None:
        rows = self._query("select_config", (key,))
        return str(rows[0][0]) if rows else None

    def set_config(self, key: str, value: str) -> None:
        with self.transaction() as cur:
            cur.execute(self.sql["upsert_config"], (key, value, to_db_ts(utcnow())))

    # -- training runs and retraining triggers -----------------------------------------
    def start_training_run(self, run_id: str, started_at: datetime) -> None:
        with self.transaction() as cur:
            cur.execute(self.sql["upsert_training_run"], (run_id, to_db_ts(started_at)))

    def finish_training_run(self, run_id: str, status: str, finished_at: datetime) -> None:
        with self.transaction() as cur:
            cur.execute(self.sql["finish_training_run"], (to_db_ts(finished_at), status, run_id))

    def active_training_runs(self, since: datetime) -> list[str]:
        return [r[0] for r in self._query("select_active_training_runs", (to_db_ts(since),))]

    def last_trigger_at(self) -> datetime | None:
        rows = self._query("select_last_trigger")
        return from_db_ts(rows[0][0]) if rows and rows[0][0] else None

    @contextmanager
    def _claim_lock(self, cur: Any) -> Iterator[None]:
        """Only one monitor claims at a time (IRIS: an exclusive table lock, held to the end of the transaction).

        On an error the unlock is skipped: the transaction's connection is closed, which frees the lock."""
        try:
            cur.execute(self.sql["lock_retraining_claim"])
        except Exception as exc:  # the driver's own error type; say what it means
            raise FeatureStoreError(f"could not take the retraining-claim lock on {self!r}: {exc}; another "
                                    "monitor holds it (it is released when that claim commits); retry later") from exc
        yield
        cur.execute(self.sql["unlock_retraining_claim"])

    def claim_retraining(self, *, now: datetime, cooldown: timedelta, lease: timedelta, reason: str,
                         window: TimeWindow, monitoring_run_id: str) -> str | None:
        """Record a retraining trigger unless one is blocked; atomic against concurrent monitors.

        Returns None when the trigger was recorded, else why it was refused.
        """
        now = require_utc(now, "now")
        with self.transaction() as cur, self._claim_lock(cur):
            cur.execute(self.sql["count_triggers_of_monitoring_run"], (monitoring_run_id,))
            if cur.fetchone()[0]:
                return None  # this monitoring run claimed it before (a retried task): still granted
            cur.execute(self.sql["select_active_training_runs"], (to_db_ts(now - lease),))
            active = cur.fetchall()
            if active:
                return f"training run {active[0][0]} is still active"
            cur.execute(self.sql["select_last_trigger"])
            last = cur.fetchone()
            if last and last[0] and from_db_ts(last[0]) > now - cooldown:
                return f"last retraining was triggered at {last[0]} UTC, within the {cooldown} cooldown"
            start, end = window.bounds()
            cur.execute(self.sql["insert_retrain_trigger"], (to_db_ts(now), reason, start, end, monitoring_run_id))
        return None


class _TimestampMemo:
    """``to_db_ts`` remembered per value: same text, same errors, each distinct timestamp formatted once."""

    def __init__(self) -> None:
        self._texts: dict[Any, str] = {}

    def __call__(self, value: Any) -> str:
        try:
            return self._texts[value]
        except KeyError:
            text = self._texts[value] = to_db_ts(value)
            return text
        except TypeError:  # unhashable: let to_db_ts report it
            return to_db_ts(value)


def samples_frame(rows: Sequence[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame([tuple(r) for r in rows], columns=SAMPLE_COLUMNS)
    frame["id"] = frame["id"].astype("int64")
    for col in ("x", "y"):
        try:
            frame[col] = pd.to_numeric(frame[col]).astype("float64")
        except (TypeError, ValueError):
            frame[col] = frame[col].astype(object)  # text stored in a numeric column: validation names it
    frame["event_ts"] = pd.to_datetime(frame["event_ts"], utc=True, format="ISO8601")
    return frame


def parse_samples_csv(text: str, source: str = "<csv>") -> list[Sample]:
    """Parse x,y,label,datetime rows; naive datetimes in the file are taken as UTC."""
    reader = csv.DictReader(text.splitlines())
    missing = {"x", "y"} - set(reader.fieldnames or [])
    if missing:
        raise FeatureStoreError(f"{source}: missing column(s) {sorted(missing)}; expected x,y[,label,datetime]")
    samples = []
    for line_no, row in enumerate(reader, start=2):
        try:
            ts_text = (row.get("datetime") or "").strip()
            ts = datetime.fromisoformat(ts_text) if ts_text else None
            if ts is not None and ts.tzinfo is None:
                ts = ts.replace(tzinfo=timezone.utc)
            samples.append(Sample(x=_num(row["x"]), y=_num(row["y"]), label=row.get("label") or None, event_ts=ts))
        except (TypeError, ValueError) as exc:
            raise FeatureStoreError(f"{source} line {line_no}: {exc}") from exc
    return samples


def _num(text: str | None) -> float | None:
    text = (text or "").strip()
    return float(text) if text else None
