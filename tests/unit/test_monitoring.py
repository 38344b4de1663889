"""Monitoring's pure parts: the window since promotion, the retraining rule (NaN included), the KS drift statistic."""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from ct_operators.monitoring import MonitoringReport, ks_drift, monitoring_window, retrain_needed

NOW = datetime(2026, 6, 10, 12, 0, tzinfo=timezone.utc)


# -- monitoring_window ------------------------------------------------------------------

def test_window_starts_at_promotion_when_within_the_lookback() -> None:
    promoted = NOW - timedelta(hours=5)
    window = monitoring_window(promoted, NOW, lookback_hours=24)
    assert window.start == promoted
    assert window.start <= NOW < window.end  # a sample at "now" is inside


def test_window_is_capped_by_the_lookback() -> None:
    promoted = NOW - timedelta(days=30)
    window = monitoring_window(promoted, NOW, lookback_hours=24)
    assert window.start == NOW - timedelta(hours=24)


def test_window_without_promotion_time_uses_the_lookback() -> None:
    window = monitoring_window(None, NOW, lookback_hours=48)
    assert window.start == NOW - timedelta(hours=48)


def test_window_with_zero_lookback_is_not_empty() -> None:
    window = monitoring_window(NOW - timedelta(hours=1), NOW, lookback_hours=0)
    assert window.start < window.end
    assert window.start <= NOW < window.end


def test_window_with_promotion_in_the_future_is_still_valid() -> None:
    """Clock skew between hosts: a promotion stamped after ``now`` must not make an inverted window."""
    window = monitoring_window(NOW + timedelta(minutes=5), NOW, lookback_hours=24)
    assert window.start < window.end
    assert window.start <= NOW


def test_window_bounds_are_utc_and_serialisable() -> None:
    plus2 = timezone(timedelta(hours=2))
    promoted = datetime(2026, 6, 10, 9, 0, tzinfo=plus2)  # 07:00 UTC
    window = monitoring_window(promoted, NOW, lookback_hours=24)
    assert window.start == datetime(2026, 6, 10, 7, 0, tzinfo=timezone.utc)
    assert window.start.utcoffset() == timedelta(0)
    as_dict = window.as_dict()
    assert datetime.fromisoformat(as_dict["start"]) == window.start
    assert datetime.fromisoformat(as_dict["end"]) == window.end


def test_window_refuses_naive_times() -> None:
    with pytest.raises((ValueError, TypeError)):
        monitoring_window(None, datetime(2026, 6, 10, 12, 0), lookback_hours=1)


# -- retrain_needed ---------------------------------------------------------------------

@pytest.mark.parametrize(("r2", "threshold", "expected"), [
    (0.9, 0.2, False),
    (0.2, 0.2, False),  # at the threshold: healthy
    (0.1999, 0.2, True),
    (-3.0, 0.2, True),
    (float("nan"), 0.2, True),  # undefined R² (e.g. constant target) counts as degraded
    (float("-inf"), 0.2, True),
    (0.5, float("nan"), True),  # a NaN threshold never says healthy
])
def test_retrain_needed(r2: float, threshold: float, expected: bool) -> None:
    assert retrain_needed(r2, threshold) is expected


# -- ks_drift ---------------------------------------------------------------------------

def test_ks_drift_same_distribution_is_small() -> None:
    rng = np.random.default_rng(0)
    result = ks_drift(rng.uniform(50, 125, 500), rng.uniform(50, 125, 500))
    assert set(result) == {"ks_statistic", "ks_pvalue"}
    assert result["ks_statistic"] < 0.15
    assert result["ks_pvalue"] > 0.01


def test_ks_drift_shifted_distribution_is_large() -> None:
    rng = np.random.default_rng(1)
    result = ks_drift(rng.uniform(50, 125, 300), rng.uniform(200, 300, 300))
    assert result["ks_statistic"] == pytest.approx(1.0)
    assert result["ks_pvalue"] < 1e-6


def test_ks_drift_ignores_non_finite_values() -> None:
    ref = np.array([1.0, 2.0, 3.0, np.nan, np.inf])
    cur = np.array([1.0, 2.0, 3.0, -np.inf])
    result = ks_drift(ref, cur)
    assert result["ks_statistic"] == pytest.approx(0.0)
    assert all(math.isfinite(v) for v in result.values())


@pytest.mark.parametrize(("ref", "cur"), [
    ([], [1.0, 2.0, 3.0]),
    ([1.0, 2.0, 3.0], []),
    ([1.0], [1.0, 2.0]),
    ([np.nan, np.nan, 1.0], [1.0, 2.0]),
])
def test_ks_drift_too_few_values_gives_nothing(ref: list, cur: list) -> None:
    assert ks_drift(np.array(ref, dtype="float64"), np.array(cur, dtype="float64")) == {}


def test_report_as_dict_round_trips() -> None:
    report = MonitoringReport(status="evaluated", action="trigger", reason="R² low", champion_version="3",
                              metrics={"r2": -1.0}, trigger_conf={"reason": "R² low"})
    data = report.as_dict()
    assert data["action"] == "trigger" and data["trigger_conf"] == {"reason": "R² low"}
    assert MonitoringReport(**data) == report
