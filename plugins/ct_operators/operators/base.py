"""What every ct-pipeline operator shares: settings from DAG Params, the store hook, run ids."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from ct_operators.config import PermanentError, Settings, load_settings
from ct_operators.events import RunIds
from ct_operators.hooks.feature_store import FeatureStoreHook

if TYPE_CHECKING:
    from ct_operators.store.base import FeatureStore


class CtOperator(BaseOperator):
    """Base class: ``settings`` = defaults <- CT_* environment <- this run's Params.

    Bad configuration or data (``PermanentError``) fails the task at once: retrying cannot fix it."""

    ui_color = "#e8f4fd"

    def execute(self, context: Context) -> Any:
        try:
            return self.run(context)
        except PermanentError as exc:
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc

    def run(self, context: Context) -> Any:
        raise NotImplementedError

    def settings(self, context: Context) -> Settings:
        return load_settings(dict(context["params"]))

    def store(self, settings: Settings) -> "FeatureStore":
        return FeatureStoreHook(settings.feature_store_conn_id).get_conn()

    def run_ids(self, context: Context) -> RunIds:
        return RunIds(dag_id=self.dag_id, run_id=context["run_id"], task_id=self.task_id)


def finish_training_run(context: Any, status: str) -> None:
    """Close the store's record of this training run (monitoring's active-run guard reads it)."""
    from ct_operators.events import emit, utcnow

    settings = load_settings(dict(context["params"]))
    run_id = context["run_id"]
    FeatureStoreHook(settings.feature_store_conn_id).get_conn().finish_training_run(run_id, status, utcnow())
    emit("training_finished", settings.audit_log, dag_id=context["dag"].dag_id, airflow_run_id=run_id,
         task_id=context["task_instance"].task_id, status=status, error=str(context.get("exception") or ""))


def mark_training_failed(context: Any) -> None:
    """Task failure callback: close the store's record of the training run so monitoring may trigger again."""
    finish_training_run(context, "failed")
