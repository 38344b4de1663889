"""
### ct_simulate_drift: insert labelled points with another slope, offset and noise

Fill in the form to draw `points` samples with `y = slope·x + offset + N(0, noise)` on
`x ∈ [x_min, x_max]`. The defaults resemble the seed data; change slope/offset to force
degradation and watch `ct_monitoring` trigger a retraining. Same as
`python -m ct_operators simulate --slope ... --offset ...`.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param

from ct_operators.operators.monitoring import SimulateDriftOperator

with DAG(
    dag_id="ct_simulate_drift",
    description="Insert simulated labelled points (drift on demand)",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["ct-pipeline", "simulation"],
    default_args={"retries": 1, "retry_delay": timedelta(seconds=10)},
    params={
        "points": Param(30, type="integer", minimum=1, maximum=1_000_000),
        "slope": Param(1.2, type="number"),
        "offset": Param(9.0, type="number"),
        "noise": Param(4.0, type="number", minimum=0),
        "x_min": Param(50.0, type="number"),
        "x_max": Param(125.0, type="number"),
        "seed": Param(None, type=["null", "integer"], minimum=0, description="Random seed; empty = random."),
        "label": Param("simulated", type="string", maxLength=100),
    },
) as dag:
    SimulateDriftOperator(task_id="insert_simulated_points")
