"""Extract a window of samples and stage frames as run-scoped files (XCom carries only their URIs)."""
from __future__ import annotations

from ct_operators.config import PermanentError

import re
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import pandas as pd

from ct_operators.store.base import FeatureStore
from ct_operators.store.types import TimeWindow


class EmptyWindowError(PermanentError):
    """No samples in the requested window."""


def parse_window(start: str | datetime | None, end: str | datetime | None) -> TimeWindow:
    """ISO-8601 bounds from a form or CLI; a bound without offset is read as UTC."""
    return TimeWindow(_parse_ts(start, "window_start"), _parse_ts(end, "window_end"))


def _parse_ts(value: str | datetime | None, name: str) -> datetime | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError(f"{name}: {value!r} is not an ISO-8601 date-time (e.g. 2026-01-31T00:00:00Z)") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def extract_window(store: FeatureStore, window: TimeWindow) -> pd.DataFrame:
    frame = store.fetch_samples(window)
    if frame.empty:
        raise EmptyWindowError(
            f"no samples in window {window.as_dict()} of {store!r}; widen the window or load data first")
    return frame


def run_folder(staging_dir: Path, dag_id: str, run_id: str) -> Path:
    """A folder per DAG run; the run id is made filesystem-safe."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)
    folder = staging_dir / dag_id / safe
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def stage_frame(frame: pd.DataFrame, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    _parquet_safe(frame).to_parquet(tmp, index=False)
    tmp.replace(path)  # atomic: a retried task never reads half a file
    return path.resolve().as_uri()


def staged_path(uri: str) -> Path:
    """The local path of a ``file://`` URI made by ``stage_frame`` (percent-decoded)."""
    parts = urlsplit(uri)
    if parts.scheme != "file":
        raise ValueError(f"staged data URI must be a file:// URI, got {uri!r}")
    return Path(url2pathname(parts.path))


def _parquet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns mixing numbers and text (bad rows, kept for validation to report) are staged as text."""
    mixed = [c for c in frame.columns if frame[c].dtype == object
             and frame[c].dropna().map(type).nunique() > 1]
    if not mixed:
        return frame
    out = frame.copy()
    for col in mixed:
        out[col] = out[col].map(lambda v: v if v is None or isinstance(v, str) else str(v))
    return out


def load_staged(uri: str) -> pd.DataFrame:
    path = staged_path(uri)
    if not path.exists():
        raise FileNotFoundError(f"staged data {path} is missing; re-run the upstream task that wrote it")
    return pd.read_parquet(path)
