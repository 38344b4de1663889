"""Scores unscored samples with the champion and writes predictions back."""
from __future__ import annotations

from typing import Any, Sequence

from airflow.sdk import Context

from ct_operators.operators.base import CtOperator


class ScoreSamplesOperator(CtOperator):
    """Idempotent: samples already scored by the champion's version are skipped, re-runs write nothing twice."""

    template_fields: Sequence[str] = ("batch_size",)

    def __init__(self, *, batch_size: Any = "{{ params.batch_size }}", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch_size = batch_size

    def run(self, context: Context) -> dict:
        from ct_operators.serving import PredictionService

        settings = self.settings(context)
        service = PredictionService(settings, self.store(settings), audit_fields=self.run_ids(context).fields())
        return service.score_unscored(batch_size=int(self.batch_size or settings.prediction_batch_size)).as_dict()
