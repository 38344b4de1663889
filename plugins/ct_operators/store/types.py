"""Typed values that cross the feature-store interface. Every timestamp is timezone-aware UTC."""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone

DB_TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
MIN_TS = datetime(1970, 1, 1, tzinfo=timezone.utc)
MAX_TS = datetime(9999, 12, 31, tzinfo=timezone.utc)


def require_utc(value: datetime, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} is a naive datetime; pass a timezone-aware one (UTC)")
    return value.astimezone(timezone.utc)


def to_db_ts(value: datetime, what: str = "timestamp") -> str:
    return require_utc(value, what).strftime(DB_TS_FORMAT)


def from_db_ts(text: str) -> datetime:
    return datetime.fromisoformat(str(text)).replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class TimeWindow:
    """Half-open window [start, end); a missing bound is open."""

    start: datetime | None = None
    end: datetime | None = None

    def __post_init__(self) -> None:
        if self.start is not None:
            object.__setattr__(self, "start", require_utc(self.start, "window start"))
        if self.end is not None:
            object.__setattr__(self, "end", require_utc(self.end, "window end"))
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError(f"window start {self.start} is not before its end {self.end}")

    def bounds(self) -> tuple[str, str]:
        return to_db_ts(self.start or MIN_TS), to_db_ts(self.end or MAX_TS)

    def as_dict(self) -> dict[str, str | None]:
        return {"start": self.start.isoformat() if self.start else None,
                "end": self.end.isoformat() if self.end else None}


@dataclass(frozen=True)
class Sample:
    x: float | None
    y: float | None = None
    label: str | None = None
    event_ts: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("x", "y"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
                raise TypeError(f"sample field {name!r} must be a number or None, got {value!r}")
            if value is not None and not math.isfinite(value):
                raise ValueError(f"sample field {name!r} must be finite, got {value!r}")
        if self.event_ts is not None:
            object.__setattr__(self, "event_ts", require_utc(self.event_ts, "sample event_ts"))


@dataclass(frozen=True)
class Prediction:
    sample_id: int
    predicted: float
    model_name: str
    model_version: str
    mlflow_run_id: str
    inference_ms: float
    predicted_at: datetime
