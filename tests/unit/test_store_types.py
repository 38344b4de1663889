"""Typed values at the feature-store boundary: aware UTC timestamps, ordered windows, finite numbers."""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest

from ct_operators.store.types import (
    MAX_TS, MIN_TS, Sample, TimeWindow, from_db_ts, require_utc, to_db_ts,
)

UTC = timezone.utc
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_require_utc_rejects_naive_datetime() -> None:
    with pytest.raises(ValueError, match="naive"):
        require_utc(datetime(2026, 3, 1, 12, 0), "event time")


def test_require_utc_rejects_non_datetime() -> None:
    with pytest.raises(TypeError, match="event time"):
        require_utc("2026-03-01", "event time")  # type: ignore[arg-type]


def test_require_utc_converts_offsets_to_utc() -> None:
    cet = timezone(timedelta(hours=1))
    assert require_utc(datetime(2026, 3, 1, 13, 0, tzinfo=cet), "t") == T0
    assert require_utc(datetime(2026, 3, 1, 13, 0, tzinfo=cet), "t").tzinfo == UTC


def test_db_timestamp_round_trip_keeps_microseconds() -> None:
    t = T0.replace(microsecond=123456)
    text = to_db_ts(t)
    assert text == "2026-03-01 12:00:00.123456"
    assert from_db_ts(text) == t


def test_to_db_ts_rejects_naive() -> None:
    with pytest.raises(ValueError, match="naive"):
        to_db_ts(datetime(2026, 3, 1))


def test_window_rejects_naive_bounds() -> None:
    with pytest.raises(ValueError, match="window start"):
        TimeWindow(start=datetime(2026, 3, 1))
    with pytest.raises(ValueError, match="window end"):
        TimeWindow(end=datetime(2026, 3, 1))


@pytest.mark.parametrize("end", [T0, T0 - timedelta(seconds=1)])
def test_window_start_not_before_end_rejected(end: datetime) -> None:
    with pytest.raises(ValueError, match="not before"):
        TimeWindow(start=T0, end=end)


def test_open_window_bounds() -> None:
    assert TimeWindow().bounds() == (to_db_ts(MIN_TS), to_db_ts(MAX_TS))
    assert TimeWindow().as_dict() == {"start": None, "end": None}
    w = TimeWindow(start=T0)
    assert w.bounds()[0] == "2026-03-01 12:00:00.000000"
    assert w.as_dict()["start"] == "2026-03-01T12:00:00+00:00"


@pytest.mark.parametrize("field_name, value", [
    ("x", math.nan), ("x", math.inf), ("y", -math.inf), ("y", float("nan")),
])
def test_sample_rejects_non_finite(field_name: str, value: float) -> None:
    kwargs = {"x": 1.0, "y": 2.0, field_name: value}
    with pytest.raises(ValueError, match=repr(field_name)):
        Sample(**kwargs)


@pytest.mark.parametrize("value", ["1.0", True, [1.0]])
def test_sample_rejects_non_numbers(value: object) -> None:
    with pytest.raises(TypeError, match="'x'"):
        Sample(x=value)  # type: ignore[arg-type]


def test_sample_rejects_naive_event_ts() -> None:
    with pytest.raises(ValueError, match="naive"):
        Sample(x=1.0, y=2.0, event_ts=datetime(2026, 3, 1))


def test_sample_allows_missing_label_and_target() -> None:
    s = Sample(x=3, y=None)
    assert s.y is None and s.label is None and s.event_ts is None
