"""
### ct_monitoring: watch the champion, retrain when it degrades

`evaluate_champion → choose_action → trigger_retraining | skip_retraining`

R², MAE and RMSE of the champion's predictions on labelled samples since its promotion (bounded
by a look-back), plus a KS drift statistic against its training data, go to the MLflow experiment
`ct_monitoring`. When R² is below the threshold, `ct_training` is triggered with the reason and
the window in its conf — unless there are too few samples, a training run is active, or the last
retraining was triggered within the cooldown (each reason is logged).
"""
from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, Param, task

from ct_operators.config import load_settings
from ct_operators.operators.monitoring import MonitorChampionOperator

settings = load_settings()

with DAG(
    dag_id="ct_monitoring",
    description="Champion performance + drift; triggers ct_training when R² drops",
    doc_md=__doc__,
    schedule=settings.schedule(settings.monitoring_schedule),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    tags=["ct-pipeline", "monitoring"],
    default_args={"retries": 3, "retry_delay": timedelta(seconds=15), "retry_exponential_backoff": True},
    params={
        "r2_threshold": Param(settings.r2_threshold, type="number", description="Retrain when R² is below this."),
        "monitoring_min_samples": Param(settings.monitoring_min_samples, type="integer", minimum=2),
        "monitoring_lookback_hours": Param(settings.monitoring_lookback_hours, type="number", minimum=0),
        "retrain_cooldown_minutes": Param(settings.retrain_cooldown_minutes, type="number", minimum=0),
    },
) as dag:
    evaluate = MonitorChampionOperator(task_id="evaluate_champion")

    @task.branch
    def choose_action(report: dict) -> str:
        """The decision (and its guards) was made by evaluate_champion; this only routes it."""
        return "trigger_retraining" if report["action"] == "trigger" else "skip_retraining"

    trigger = TriggerDagRunOperator(
        task_id="trigger_retraining",
        trigger_dag_id="ct_training",
        trigger_run_id="retrain__{{ run_id }}",
        conf="{{ ti.xcom_pull(task_ids='evaluate_champion')['trigger_conf'] }}",
        skip_when_already_exists=True,
        wait_for_completion=False,
    )
    skip = EmptyOperator(task_id="skip_retraining")

    choose_action(evaluate.output) >> [trigger, skip]
