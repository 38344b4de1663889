"""One operator per ``ct_training`` step. Inputs arrive as XComArgs (small dicts of URIs and ids);
each result is also kept in the run folder so a containerised step can read it."""
from __future__ import annotations

import json
from typing import Any, Sequence

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Context

from ct_operators.config import Settings, load_settings
from ct_operators.events import RunIds
from ct_operators.operators.base import CtOperator, finish_training_run


def as_dict(value: Any) -> dict:
    """Upstream XCom: a dict, or the JSON line a containerised step printed."""
    return json.loads(value) if isinstance(value, str) else dict(value)


class TrainingStepOperator(CtOperator):
    """Settings and ids from the context → the step → its result saved for the run and returned."""

    def run(self, context: Context) -> dict:
        from ct_operators.training import steps

        settings, ids = self.settings(context), self.run_ids(context)
        return steps.save_output(settings, ids, self.task_id, self.run_step(settings, ids))

    def run_step(self, settings: Settings, ids: RunIds) -> dict:
        raise NotImplementedError


class ExtractDataOperator(TrainingStepOperator):
    """Rows of the feature store in [window_start, window_end), staged as a file for the run."""

    template_fields: Sequence[str] = ("window_start", "window_end")

    def __init__(self, *, window_start: str | None = "{{ params.window_start }}",
                 window_end: str | None = "{{ params.window_end }}", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.window_start = window_start
        self.window_end = window_end

    def run(self, context: Context) -> dict:
        from ct_operators.training import steps
        from ct_operators.training.container import PARAMS_FILE

        steps.save_output(self.settings(context), self.run_ids(context), PARAMS_FILE, dict(context["params"]))
        return super().run(context)

    def run_step(self, settings: Settings, ids: RunIds) -> dict:
        from ct_operators.training import steps
        from ct_operators.training.data import parse_window

        window = parse_window(self.window_start, self.window_end)
        return steps.extract(settings, self.store(settings), ids, window)


class ValidateDataOperator(TrainingStepOperator):
    """Fails on data errors (no retries: bad data does not get better), keeps warnings in a report."""

    template_fields: Sequence[str] = ("extracted",)

    def __init__(self, *, extracted: Any, **kwargs: Any) -> None:
        kwargs.setdefault("retries", 0)
        super().__init__(**kwargs)
        self.extracted = extracted

    def run_step(self, settings: Settings, ids: RunIds) -> dict:
        from ct_operators.training import steps

        return steps.validate_data(settings, ids, as_dict(self.extracted))


class PrepareDataOperator(TrainingStepOperator):
    template_fields: Sequence[str] = ("validated",)

    def __init__(self, *, validated: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validated = validated

    def run_step(self, settings: Settings, ids: RunIds) -> dict:
        from ct_operators.training import steps

        return steps.prepare(settings, ids, as_dict(self.validated))


class TrainModelOperator(TrainingStepOperator):
    template_fields: Sequence[str] = ("prepared",)

    def __init__(self, *, prepared: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prepared = prepared

    def run_step(self, settings: Settings, ids: RunIds) -> dict:
        from ct_operators.training import steps

        return steps.train(settings, ids, as_dict(self.prepared))


class HoldoutStepOperator(TrainingStepOperator):
    """A step that needs the prepared split and the trained model version."""

    template_fields: Sequence[str] = ("prepared", "trained")

    def __init__(self, *, prepared: Any, trained: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prepared = prepared
        self.trained = trained


class EvaluateModelOperator(HoldoutStepOperator):
    """mlflow.models.evaluate on the holdout, plots and a SHAP explainer."""

    def run_step(self, settings: Settings, ids: RunIds) -> dict:
        from ct_operators.training import steps

        return steps.evaluate(settings, ids, as_dict(self.prepared), as_dict(self.trained))


class ValidateModelOperator(HoldoutStepOperator):
    """Challenger vs champion on the same holdout; returns the decision and its reasons."""

    def run_step(self, settings: Settings, ids: RunIds) -> dict:
        from ct_operators.training import steps

        return steps.validate_model(settings, ids, as_dict(self.prepared), as_dict(self.trained))


class PromotionApprovalOperator(ApprovalOperator):
    """Human-in-the-loop gate, active only when Param ``require_approval`` is true and the model passed."""

    template_fields: Sequence[str] = (*ApprovalOperator.template_fields, "decision")

    def __init__(self, *, decision: Any, **kwargs: Any) -> None:
        kwargs.setdefault("subject", "Promote the challenger to champion?")
        super().__init__(**kwargs)
        self.decision = decision

    def execute(self, context: Context) -> Any:
        decision = as_dict(self.decision)
        if not context["params"].get("require_approval") or not decision["promote"]:
            self.log.info("approval not needed (require_approval=%s, promote=%s)",
                          context["params"].get("require_approval"), decision["promote"])
            return {"approval": "not_required"}
        self.body = f"Model version {decision['model_version']} passed validation: " + "; ".join(decision["reasons"])
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """After the reviewer answered. On Reject the base class skips promote_model by raising,
        so the rejection is recorded first."""
        if "error" not in event and list(event.get("chosen_options") or []) == [self.REJECT]:
            from ct_operators.events import emit

            settings = load_settings(dict(context["params"]))
            emit("rejected", settings.audit_log, **RunIds(self.dag_id, context["run_id"], self.task_id).fields(),
                 model_version=as_dict(self.decision)["model_version"], reasons=["rejected by reviewer"],
                 reviewer=str(event.get("responded_by_user")))
            finish_training_run(context, "rejected_by_reviewer")
        return super().execute_complete(context, event)


class PromoteModelOperator(TrainingStepOperator):
    """Sets alias ``champion`` (old one kept as ``previous``) and the serving pointer, or records the rejection."""

    template_fields: Sequence[str] = ("decision",)

    def __init__(self, *, decision: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.decision = decision

    def run_step(self, settings: Settings, ids: RunIds) -> dict:
        from ct_operators.training import steps

        return steps.promote(settings, self.store(settings), ids, as_dict(self.decision))
