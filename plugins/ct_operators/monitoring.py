"""Monitoring: the champion's metrics on labelled samples since its promotion, a drift statistic,
and the retraining decision with its guards (min samples, active training, cooldown)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from ct_operators import registry
from ct_operators.config import Settings
from ct_operators.events import RunIds, emit, utcnow
from ct_operators.store.base import FeatureStore
from ct_operators.store.types import TimeWindow
from ct_operators.training.metrics import regression_scores
from ct_operators.training.steps import PROMOTED_AT_TAG, TRAINING_SAMPLE_ARTIFACT



@dataclass
class MonitoringReport:
    status: str  # "evaluated" | "no_champion" | "insufficient_data"
    action: str  # "trigger" | "skip"
    reason: str
    champion_version: str | None = None
    window: dict = field(default_factory=dict)
    samples: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    drift: dict[str, float] = field(default_factory=dict)
    trigger_conf: dict[str, Any] = field(default_factory=dict)
    mlflow_run_id: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def monitoring_window(promoted_at: datetime | None, now: datetime, lookback_hours: float) -> TimeWindow:
    """Since the champion's promotion, but never further back than the look-back."""
    earliest = now - timedelta(hours=lookback_hours)
    start = max(promoted_at, earliest) if promoted_at else earliest
    return TimeWindow(start=min(start, now - timedelta(microseconds=1)), end=now + timedelta(microseconds=1))


def ks_drift(reference: np.ndarray, current: np.ndarray) -> dict[str, float]:
    """Two-sample Kolmogorov-Smirnov statistic of one feature (window vs training data)."""
    from scipy.stats import ks_2samp

    reference, current = reference[np.isfinite(reference)], current[np.isfinite(current)]
    if len(reference) < 2 or len(current) < 2:
        return {}
    result = ks_2samp(reference, current)
    return {"ks_statistic": float(result.statistic), "ks_pvalue": float(result.pvalue)}


def retrain_needed(r2: float, threshold: float) -> bool:
    return not r2 >= threshold  # NaN counts as degraded


def evaluate_champion(settings: Settings, store: FeatureStore, ids: RunIds, now: datetime | None = None) -> MonitoringReport:
    """Compute, log to the monitoring experiment, decide (claiming the trigger atomically), audit."""
    now = now or utcnow()
    client = registry.connect(settings)
    registry.sync_serving_pointer(client, settings, store)
    champion = registry.version_by_alias(client, settings.registered_model_name, settings.champion_alias)
    if champion is None:
        report = MonitoringReport(status="no_champion", action="skip", reason="no champion model yet: nothing to monitor")
        return _finish(settings, ids, report, None)
    promoted_at = _promoted_at(client, settings, champion)
    window = monitoring_window(promoted_at, now, settings.monitoring_lookback_hours)
    frame = store.fetch_labelled_predictions(champion.name, champion.version, window)
    report = MonitoringReport(status="evaluated", action="skip", reason="", champion_version=champion.version,
                              window=window.as_dict(), samples=len(frame))
    if len(frame) < settings.monitoring_min_samples:
        report.status = "insufficient_data"
        report.reason = (f"{len(frame)} labelled sample(s) with predictions since {window.start.isoformat()}, "
                         f"fewer than the minimum {settings.monitoring_min_samples}: no decision")
        return _finish(settings, ids, report, frame)
    scores = regression_scores(frame["y"], frame["predicted"])
    report.metrics = {"r2": scores.r2, "mae": scores.mae, "rmse": scores.rmse}
    report.drift = ks_drift(_training_features(client, champion, settings), frame[settings.features[0]].to_numpy("float64"))
    if not retrain_needed(scores.r2, settings.r2_threshold):
        report.reason = f"R² {scores.r2:.4f} ≥ threshold {settings.r2_threshold}: champion is healthy"
        return _finish(settings, ids, report, frame)
    why = f"R² {scores.r2:.4f} < threshold {settings.r2_threshold} on {len(frame)} samples of champion v{champion.version}"
    refused = store.claim_retraining(
        now=now, cooldown=timedelta(minutes=settings.retrain_cooldown_minutes),
        lease=timedelta(minutes=settings.training_lease_minutes), reason=why, window=window,
        monitoring_run_id=ids.run_id)
    if refused:
        report.reason = f"{why}, but {refused}: not triggering again"
        return _finish(settings, ids, report, frame)
    report.action, report.reason = "trigger", why
    report.trigger_conf = {"reason": why, "window_start": window.start.isoformat(), "window_end": None,
                           "triggered_by": f"{ids.dag_id}/{ids.run_id}"}
    return _finish(settings, ids, report, frame)


def _finish(settings: Settings, ids: RunIds, report: MonitoringReport, frame: pd.DataFrame | None) -> MonitoringReport:
    import mlflow

    from ct_operators import plots

    client = registry.connect(settings)
    experiment_id = registry.ensure_experiment(client, settings, settings.monitoring_experiment)
    run_id = registry.find_or_create_run(client, experiment_id, dag_id=ids.dag_id, airflow_run_id=ids.run_id,
                                         run_name=f"{ids.dag_id}/{ids.run_id}")
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics({"sample_count": report.samples, **report.metrics, **report.drift})
        mlflow.set_tags({"ct.status": report.status, "ct.action": report.action, "ct.reason": report.reason[:4000],
                         "ct.champion_version": report.champion_version or "none",
                         "ct.window_start": str(report.window.get("start"))})
        if frame is not None and not frame.empty:
            fig = plots.predictions_over_time(frame)
            mlflow.log_figure(fig, "plots/predictions_over_time.png")
            plots.close(fig)
    report.mlflow_run_id = run_id
    emit("monitored", settings.audit_log, **ids.fields(), mlflow_run_id=run_id, status=report.status,
         champion_version=report.champion_version, samples=report.samples, metrics=report.metrics, drift=report.drift)
    emit("triggered" if report.action == "trigger" else "skipped", settings.audit_log, **ids.fields(),
         mlflow_run_id=run_id, reason=report.reason, trigger_conf=report.trigger_conf or None)
    return report


def _promoted_at(client: Any, settings: Settings, champion: registry.ModelRef) -> datetime | None:
    tag = client.get_model_version(champion.name, champion.version).tags.get(PROMOTED_AT_TAG)
    return datetime.fromisoformat(tag) if tag else None


def _training_features(client: Any, champion: registry.ModelRef, settings: Settings) -> np.ndarray:
    """The champion's training feature values, logged by train_model; empty if the run has none."""
    import mlflow

    names = {a.path for a in client.list_artifacts(champion.run_id, "data")}
    if TRAINING_SAMPLE_ARTIFACT not in names:
        return np.array([])
    path = mlflow.artifacts.download_artifacts(run_id=champion.run_id, artifact_path=TRAINING_SAMPLE_ARTIFACT)
    return pd.read_parquet(path)[settings.features[0]].to_numpy("float64")
