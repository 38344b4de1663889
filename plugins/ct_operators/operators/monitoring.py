"""Monitoring and drift-simulation operators."""
from __future__ import annotations

from airflow.sdk import Context

from ct_operators.operators.base import CtOperator


class MonitorChampionOperator(CtOperator):
    """R²/MAE/RMSE + drift of the champion since its promotion; decides (with guards) whether to retrain."""

    def run(self, context: Context) -> dict:
        from ct_operators.monitoring import evaluate_champion

        settings = self.settings(context)
        return evaluate_champion(settings, self.store(settings), self.run_ids(context)).as_dict()


class SimulateDriftOperator(CtOperator):
    """Inserts labelled points drawn from the Params' slope/offset/noise into the feature store."""

    def run(self, context: Context) -> dict:
        from ct_operators.simulate import DriftSpec, insert_simulated

        settings = self.settings(context)
        spec = DriftSpec.from_mapping(dict(context["params"]))
        return insert_simulated(settings, self.store(settings), spec, self.run_ids(context).fields())
