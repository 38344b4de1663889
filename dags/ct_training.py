"""
### ct_training: retrain, evaluate, validate against the champion, promote

`extract_data → validate_data → prepare_data → train_model → evaluate_model → validate_model →
approve_promotion → promote_model`

* Data window, thresholds and the model itself come from the **Params** form (or the `conf` sent by
  `ct_monitoring` when it triggers a retraining).
* Every model is registered in MLflow with metrics, plots and a SHAP explainer; it becomes the
  `champion` only if it beats the current one on the same holdout (lower MAE **and** higher R²)
  and clears the R² floor. With `require_approval`, a human approves the promotion in the UI.
* `CT_EXECUTION_MODE=docker` runs `train_model` and `evaluate_model` in their own container.
* Decisions are JSON audit events in the task logs and in `<data dir>/audit/events.jsonl`.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param

from ct_operators.config import load_settings
from ct_operators.operators.base import mark_training_failed
from ct_operators.operators.training import (
    EvaluateModelOperator, ExtractDataOperator, PrepareDataOperator, PromoteModelOperator,
    PromotionApprovalOperator, TrainModelOperator, ValidateDataOperator, ValidateModelOperator,
)

settings = load_settings()

with DAG(
    dag_id="ct_training",
    description="Continuous training: extract → validate → prepare → train → evaluate → validate model → promote",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    tags=["ct-pipeline", "training"],
    default_args={
        "retries": 2,
        "retry_delay": timedelta(seconds=20),
        "retry_exponential_backoff": True,
        "on_failure_callback": mark_training_failed,
    },
    params={
        "window_start": Param(None, type=["null", "string"], format="date-time", title="Window start (UTC, ISO-8601)",
                              description="First event time to train on; empty = from the beginning."),
        "window_end": Param(None, type=["null", "string"], format="date-time", title="Window end (UTC, ISO-8601)",
                            description="Exclusive end of the window; empty = no upper bound."),
        "model_class": Param(settings.model_class, type="string", minLength=3,
                             description="Import path of a scikit-learn regressor."),
        "model_params": Param(dict(settings.model_params), type="object", description="Its hyperparameters."),
        "min_rows": Param(settings.min_rows, type="integer", minimum=2),
        "test_size": Param(settings.test_size, type="number", exclusiveMinimum=0, exclusiveMaximum=1),
        "seed": Param(settings.seed, type="integer"),
        "r2_floor": Param(settings.r2_floor, type="number", description="A challenger must score an R² above this."),
        "require_approval": Param(settings.require_approval, type="boolean",
                                  description="Ask a human (Required actions) before promoting."),
        "reason": Param("manual", type="string", maxLength=500, description="Why this run was started."),
    },
) as dag:
    extract = ExtractDataOperator(task_id="extract_data")
    validate = ValidateDataOperator(task_id="validate_data", extracted=extract.output)
    prepare = PrepareDataOperator(task_id="prepare_data", validated=validate.output)
    if settings.execution_mode == "docker":  # heavy steps in their own container, same logic and files
        from ct_operators.operators.container import ContainerStepOperator

        train = ContainerStepOperator(task_id="train_model", settings=settings)
        evaluate = ContainerStepOperator(task_id="evaluate_model", settings=settings)
        prepare >> train
    else:
        train = TrainModelOperator(task_id="train_model", prepared=prepare.output)
        evaluate = EvaluateModelOperator(task_id="evaluate_model", prepared=prepare.output, trained=train.output)
    validate_model = ValidateModelOperator(task_id="validate_model", prepared=prepare.output, trained=train.output)
    approve = PromotionApprovalOperator(task_id="approve_promotion", decision=validate_model.output,
                                        response_timeout=timedelta(days=2))
    promote = PromoteModelOperator(task_id="promote_model", decision=validate_model.output)

    extract >> validate >> prepare >> train >> evaluate >> validate_model >> approve >> promote
