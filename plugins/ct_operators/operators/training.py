"""One operator per ``ct_training`` step. Inputs arrive as XComArgs (small dicts of URIs and ids)."""
from __future__ import annotations

from typing import Any, Sequence

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Context

from ct_operators.operators.base import CtOperator


class ExtractDataOperator(CtOperator):
    """Rows of the feature store in [window_start, window_end), staged as a file for the run."""

    template_fields: Sequence[str] = ("window_start", "window_end")

    def __init__(self, *, window_start: str | None = "{{ params.window_start }}",
                 window_end: str | None = "{{ params.window_end }}", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.window_start = window_start
        self.window_end = window_end

    def execute(self, context: Context) -> dict:
        from ct_operators.training import steps

        settings = self.settings(context)
        window = steps.parse_window(self.window_start, self.window_end)
        return steps.extract(settings, self.store(settings), self.run_ids(context), window)


class ValidateDataOperator(CtOperator):
    """Fails on data errors (no retries: bad data does not get better), keeps warnings in a report."""

    template_fields: Sequence[str] = ("extracted",)

    def __init__(self, *, extracted: Any, **kwargs: Any) -> None:
        kwargs.setdefault("retries", 0)
        super().__init__(**kwargs)
        self.extracted = extracted

    def execute(self, context: Context) -> dict:
        from ct_operators.training import steps

        return steps.validate_data(self.settings(context), self.run_ids(context), self.extracted)


class PrepareDataOperator(CtOperator):
    template_fields: Sequence[str] = ("validated",)

    def __init__(self, *, validated: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validated = validated

    def execute(self, context: Context) -> dict:
        from ct_operators.training import steps

        return steps.prepare(self.settings(context), self.run_ids(context), self.validated)


class TrainModelOperator(CtOperator):
    template_fields: Sequence[str] = ("prepared",)

    def __init__(self, *, prepared: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prepared = prepared

    def execute(self, context: Context) -> dict:
        from ct_operators.training import steps

        return steps.train(self.settings(context), self.run_ids(context), self.prepared)


class EvaluateModelOperator(CtOperator):
    template_fields: Sequence[str] = ("prepared", "trained")

    def __init__(self, *, prepared: Any, trained: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prepared = prepared
        self.trained = trained

    def execute(self, context: Context) -> dict:
        from ct_operators.training import steps

        return steps.evaluate(self.settings(context), self.run_ids(context), self.prepared, self.trained)


class ValidateModelOperator(CtOperator):
    """Challenger vs champion on the same holdout; returns the decision and its reasons."""

    template_fields: Sequence[str] = ("prepared", "trained")

    def __init__(self, *, prepared: Any, trained: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prepared = prepared
        self.trained = trained

    def execute(self, context: Context) -> dict:
        from ct_operators.training import steps

        return steps.validate_model(self.settings(context), self.run_ids(context), self.prepared, self.trained)


class PromotionApprovalOperator(ApprovalOperator):
    """Human-in-the-loop gate, active only when Param ``require_approval`` is true and the model passed."""

    template_fields: Sequence[str] = (*ApprovalOperator.template_fields, "decision")

    def __init__(self, *, decision: Any, **kwargs: Any) -> None:
        kwargs.setdefault("subject", "Promote the challenger to champion?")
        super().__init__(**kwargs)
        self.decision = decision

    def execute(self, context: Context) -> Any:
        if not context["params"].get("require_approval") or not self.decision["promote"]:
            self.log.info("approval not needed (require_approval=%s, promote=%s)",
                          context["params"].get("require_approval"), self.decision["promote"])
            return {"approval": "not_required"}
        self.body = (f"Model version {self.decision['model_version']} passed validation: "
                     + "; ".join(self.decision["reasons"]))
        return super().execute(context)


class PromoteModelOperator(CtOperator):
    """Sets alias ``champion`` (old one kept as ``previous``) and the serving pointer, or records the rejection."""

    template_fields: Sequence[str] = ("decision",)

    def __init__(self, *, decision: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.decision = decision

    def execute(self, context: Context) -> dict:
        from ct_operators.training import steps

        settings = self.settings(context)
        return steps.promote(settings, self.store(settings), self.run_ids(context), self.decision)
