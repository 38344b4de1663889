"""
### ct_prediction: score new samples with the champion

Resolves the champion through the serving pointer, loads it from the local model cache (refilled
from MLflow when missing or corrupt) and writes one prediction per sample and model version,
with its inference time. Re-running never duplicates a prediction.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param

from ct_operators.config import load_settings
from ct_operators.operators.prediction import ScoreSamplesOperator

settings = load_settings()

with DAG(
    dag_id="ct_prediction",
    description="Score unscored samples with the champion model",
    doc_md=__doc__,
    schedule=settings.schedule(settings.prediction_schedule),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["ct-pipeline", "serving"],
    default_args={"retries": 3, "retry_delay": timedelta(seconds=15), "retry_exponential_backoff": True},
    params={"batch_size": Param(settings.prediction_batch_size, type="integer", minimum=1, maximum=1_000_000)},
) as dag:
    ScoreSamplesOperator(task_id="score_unscored_samples")
