"""`make demo`: the whole continuous-training story, headless, on the real Airflow scheduler.

seed data → ct_training (champion v1) → seed-like points → predictions → monitoring: healthy →
drifted points → predictions → monitoring: R² below threshold → ct_training triggered by
ct_monitoring → champion v2 → more drifted points → predictions → monitoring: recovered.
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ct_operators.config import Settings, load_settings
from ct_operators.events import utcnow
from ct_operators.local_airflow import AirflowApi, airflow_environment, migrate, run, start_standalone

DAG_IDS = ["ct_training", "ct_prediction", "ct_monitoring", "ct_simulate_drift"]
SEED_LIKE = {"points": 20, "slope": 1.2, "offset": 9.0, "noise": 4.0, "seed": 1, "label": "seed_like"}
DRIFTED = {"points": 300, "slope": -0.8, "offset": 230.0, "noise": 4.0, "seed": 2, "label": "drifted"}
DRIFTED_LATER = {**DRIFTED, "points": 50, "seed": 3}


@dataclass
class Step:
    step: str
    dag_id: str
    run_id: str
    state: str
    seconds: float
    detail: dict[str, Any] = field(default_factory=dict)


class Demo:
    def __init__(self, settings: Settings, api: AirflowApi, log: Any = print) -> None:
        self.settings, self.api, self.log = settings, api, log
        self.steps: list[Step] = []

    def run_dag(self, step: str, dag_id: str, conf: dict | None = None) -> Step:
        started = time.monotonic()
        run_id = self.api.trigger(dag_id, conf)
        state = self.api.wait_run(dag_id, run_id)
        record = Step(step, dag_id, run_id, state, round(time.monotonic() - started, 1))
        self.steps.append(record)
        if state != "success":
            raise RuntimeError(f"{step}: {dag_id} run {run_id} ended {state}: {self.api.task_states(dag_id, run_id)}")
        return record

    def train(self, step: str) -> Step:
        record = self.run_dag(step, "ct_training", {"reason": "make demo"})
        record.detail = self.api.xcom("ct_training", record.run_id, "promote_model")
        self.log(f"  {step}: promoted={record.detail['promoted']} champion v{record.detail['model_version']} "
                 f"({record.seconds}s)")
        return record

    def simulate(self, step: str, spec: dict) -> Step:
        record = self.run_dag(step, "ct_simulate_drift", spec)
        record.detail = {"inserted": spec["points"], "slope": spec["slope"], "offset": spec["offset"]}
        self.log(f"  {step}: {spec['points']} points, y = {spec['slope']}·x + {spec['offset']} ± {spec['noise']}")
        return record

    def predict(self, step: str) -> Step:
        record = self.run_dag(step, "ct_prediction")
        summary = self.api.xcom("ct_prediction", record.run_id, "score_unscored_samples")
        record.detail = {"scored": summary["scored"], "model_version": summary["model_version"]}
        self.log(f"  {step}: {summary['scored']} samples scored by v{summary['model_version']}")
        return record

    def monitor(self, step: str) -> Step:
        record = self.run_dag(step, "ct_monitoring")
        report = self.api.xcom("ct_monitoring", record.run_id, "evaluate_champion")
        tasks = self.api.task_states("ct_monitoring", record.run_id)
        branch = "trigger_retraining" if tasks.get("trigger_retraining") == "success" else "skip_retraining"
        record.detail = {"champion_version": report["champion_version"], "r2": report["metrics"].get("r2"),
                         "samples": report["samples"], "branch": branch, "reason": report["reason"]}
        r2 = report["metrics"].get("r2")
        self.log(f"  {step}: champion v{report['champion_version']} R²={r2 if r2 is None else round(r2, 3)} "
                 f"on {report['samples']} samples → {branch} ({report['reason']})")
        return record

    def wait_triggered_training(self, monitoring_run_id: str) -> Step:
        run_id = f"retrain__{monitoring_run_id}"
        started = time.monotonic()
        state = self.api.wait_run("ct_training", run_id)
        record = Step("retraining triggered by ct_monitoring", "ct_training", run_id, state,
                      round(time.monotonic() - started, 1))
        self.steps.append(record)
        if state != "success":
            raise RuntimeError(f"triggered ct_training {run_id} ended {state}")
        record.detail = self.api.xcom("ct_training", run_id, "promote_model")
        self.log(f"  retraining {run_id}: promoted={record.detail['promoted']} "
                 f"champion v{record.detail['model_version']} ({record.seconds}s)")
        return record

    def story(self) -> None:
        self.train("1. initial training on the seed data")
        self.simulate("2. seed-like points", SEED_LIKE)
        self.predict("3. predictions")
        self.monitor("4. monitoring (expect: skip)")
        self.simulate("5. drifted points", DRIFTED)
        self.predict("6. predictions")
        degraded = self.monitor("7. monitoring (expect: trigger)")
        if degraded.detail["branch"] != "trigger_retraining":
            raise RuntimeError(f"monitoring did not trigger a retraining: {degraded.detail['reason']}")
        self.wait_triggered_training(degraded.run_id)
        self.simulate("8. more drifted points", DRIFTED_LATER)
        self.predict("9. predictions")
        self.monitor("10. monitoring (expect: recovered, skip)")


def summary_table(steps: list[Step]) -> str:
    lines = ["| step | DAG | state | s | result |", "|---|---|---|---|---|"]
    for s in steps:
        d = s.detail
        if s.dag_id == "ct_monitoring":
            r2 = d.get("r2")
            result = f"v{d.get('champion_version')} R²={'n/a' if r2 is None else f'{r2:.3f}'} → {d.get('branch')}"
        elif s.dag_id == "ct_training":
            result = f"v{d.get('model_version')} promoted={d.get('promoted')} run={s.run_id}"
        else:
            result = json.dumps(d)
        lines.append(f"| {s.step} | {s.dag_id} | {s.state} | {s.seconds} | {result} |")
    return "\n".join(lines)


def prepare_data_dir(settings: Settings, log: Any = print) -> None:
    """The demo starts from empty stores; an existing data dir is moved aside, never deleted."""
    if settings.data_dir.exists() and any(settings.data_dir.iterdir()):
        backup = settings.data_dir.with_name(f"{settings.data_dir.name}.before-demo-{utcnow():%Y%m%dT%H%M%S}")
        shutil.move(str(settings.data_dir), backup)
        log(f"moved the existing data dir aside to {backup}")
    settings.data_dir.mkdir(parents=True, exist_ok=True)


def run_demo(port: int = 8080) -> dict:
    started = time.monotonic()
    settings = load_settings()
    prepare_data_dir(settings)
    env = airflow_environment(settings, port)
    env.update({"CT_PREDICTION_SCHEDULE": "", "CT_MONITORING_SCHEDULE": ""})  # the demo drives every run itself
    print(f"data dir: {settings.data_dir}")
    print("initialising Airflow's metadata DB and the feature store (seed data)...")
    migrate(env)
    print(run([sys.executable, "-m", "ct_operators", "init-store"], env).strip())
    airflow = start_standalone(env, settings.data_dir / "logs" / "airflow-standalone.log", port)
    summary: dict[str, Any] = {}
    try:
        api = AirflowApi(airflow.base_url, Path(env["AIRFLOW_HOME"]))
        print(f"starting airflow standalone (scheduler, dag-processor, triggerer, API on :{port})...")
        api.wait_ready(DAG_IDS, process=airflow)
        for dag_id in DAG_IDS:
            api.unpause(dag_id)
        demo = Demo(settings, api)
        try:
            demo.story()
        finally:
            summary = build_summary(demo.steps, time.monotonic() - started)
            out = settings.data_dir / "demo_summary.json"
            out.write_text(json.dumps(summary, indent=2, default=str))
            print("\n" + summary_table(demo.steps))
            print(f"\nsummary: {out}  wall time: {summary['wall_seconds']:.0f}s")
    finally:
        airflow.stop()
    print("stores kept: run `make up` to browse the runs (Airflow :8080) and models (MLflow :5000).")
    return summary


def build_summary(steps: list[Step], wall_seconds: float) -> dict:
    monitoring = [s for s in steps if s.dag_id == "ct_monitoring"]
    trainings = [s for s in steps if s.dag_id == "ct_training"]
    triggered = [s for s in trainings if s.run_id.startswith("retrain__")]
    return {
        "wall_seconds": round(wall_seconds, 1),
        "completed": len(steps) == 11 and all(s.state == "success" for s in steps),
        "monitoring": [{"run_id": s.run_id, **s.detail} for s in monitoring],
        "trainings": [{"run_id": s.run_id, **s.detail} for s in trainings],
        "triggered_training_run_id": triggered[0].run_id if triggered else None,
        "final_champion_version": trainings[-1].detail.get("model_version") if trainings else None,
        "steps": [asdict(s) for s in steps],
    }
