"""``python -m ct_operators <command>``: set-up, drift simulation, prediction, demo and `make up`."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from ct_operators.config import PROJECT_ROOT, ConfigError, load_settings

SEED_CSV = PROJECT_ROOT / "include" / "data" / "point_samples.csv"


def init_store(seed: Path | None = SEED_CSV) -> dict:
    """Create the schema (idempotent) and load the seed data once."""
    from ct_operators.events import emit
    from ct_operators.store.factory import store_from_environment

    settings = load_settings()
    store = store_from_environment(settings)
    store.init_schema()
    inserted = store.load_seed_csv(seed) if seed else 0
    if inserted:
        emit("seed_loaded", settings.audit_log, rows=inserted, source=str(seed), store=repr(store))
    return {"store": repr(store), "seed_rows_inserted": inserted, "samples": store.count_samples()}


def simulate(args: argparse.Namespace) -> dict:
    from ct_operators.simulate import DriftSpec, insert_simulated
    from ct_operators.store.factory import store_from_environment

    settings = load_settings()
    spec = DriftSpec(points=args.points, slope=args.slope, offset=args.offset, noise=args.noise,
                     x_min=args.x_min, x_max=args.x_max, seed=args.seed, label=args.label)
    return insert_simulated(settings, store_from_environment(settings), spec, {"source": "cli"})


def predict(args: argparse.Namespace) -> dict:
    from ct_operators.serving import PredictionService
    from ct_operators.store.factory import store_from_environment
    from ct_operators.training.data import parse_window

    settings = load_settings()
    service = PredictionService(settings, store_from_environment(settings), audit_fields={"source": "cli"})
    if args.ids:
        return service.score_ids(args.ids).as_dict()
    if args.start or args.end:
        return service.score_window(parse_window(args.start, args.end)).as_dict()
    return service.score_unscored(batch_size=args.batch_size).as_dict()


def up(port: int, mlflow_port: int) -> dict:
    """Start Airflow standalone and the MLflow UI on the embedded stores; block until Ctrl-C."""
    import time

    from ct_operators.demo import DAG_IDS
    from ct_operators.local_airflow import AirflowApi, airflow_environment, migrate, start_mlflow_ui, start_standalone

    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    env = airflow_environment(settings, port)
    migrate(env)
    print(json.dumps(init_store(), indent=2))
    airflow = start_standalone(env, settings.data_dir / "logs" / "airflow-standalone.log", port)
    mlflow_ui = start_mlflow_ui(settings, settings.data_dir / "logs" / "mlflow-ui.log", mlflow_port)
    try:
        api = AirflowApi(airflow.base_url, Path(env["AIRFLOW_HOME"]))
        api.wait_ready(DAG_IDS, process=airflow)
        print(f"\nAirflow UI and REST API: http://localhost:{port}   user: admin   password: {api.password()}")
        print(f"  (password file: {Path(env['AIRFLOW_HOME']) / 'simple_auth_manager_passwords.json.generated'})")
        print(f"MLflow UI: http://localhost:{mlflow_port}")
        print(f"logs: {settings.data_dir / 'logs'}   Ctrl-C stops both.")
        while airflow.process.poll() is None:
            time.sleep(2)
    except KeyboardInterrupt:
        print("stopping...")
    finally:
        airflow.stop()
        mlflow_ui.terminate()
    return {"stopped": True}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ct_operators", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_init = sub.add_parser("init-store", help="create the feature-store schema and load the seed data once")
    p_init.add_argument("--seed-csv", type=Path, default=SEED_CSV)
    p_init.add_argument("--no-seed", action="store_true")
    p_sim = sub.add_parser("simulate", help="insert labelled points y = slope*x + offset + noise")
    p_sim.add_argument("--points", type=int, default=30)
    p_sim.add_argument("--slope", type=float, default=1.2)
    p_sim.add_argument("--offset", type=float, default=9.0)
    p_sim.add_argument("--noise", type=float, default=4.0)
    p_sim.add_argument("--x-min", type=float, default=50.0)
    p_sim.add_argument("--x-max", type=float, default=125.0)
    p_sim.add_argument("--seed", type=int, default=None)
    p_sim.add_argument("--label", default="simulated")
    p_pred = sub.add_parser("predict", help="score samples with the champion (default: all unscored)")
    p_pred.add_argument("--ids", type=int, nargs="+")
    p_pred.add_argument("--start", help="window start, ISO-8601 (UTC if no offset)")
    p_pred.add_argument("--end", help="window end, ISO-8601 (UTC if no offset)")
    p_pred.add_argument("--batch-size", type=int, default=None)
    p_step = sub.add_parser("run-step", help="run one ct_training step in this process (container entry point)")
    p_step.add_argument("task_id")
    p_step.add_argument("--dag-id", required=True)
    p_step.add_argument("--run-id", required=True)
    p_demo = sub.add_parser("demo", help="run the whole continuous-training story on the real scheduler")
    p_demo.add_argument("--port", type=int, default=8080, help="port of the Airflow API server")
    p_up = sub.add_parser("up", help="start Airflow (:8080) and the MLflow UI (:5000)")
    p_up.add_argument("--port", type=int, default=8080)
    p_up.add_argument("--mlflow-port", type=int, default=5000)
    args = parser.parse_args(argv)
    try:
        if args.command == "init-store":
            result = init_store(None if args.no_seed else args.seed_csv)
        elif args.command == "simulate":
            result = simulate(args)
        elif args.command == "predict":
            result = predict(args)
        elif args.command == "run-step":
            from ct_operators.training.container import main as run_step_main

            return run_step_main(args.task_id, args.dag_id, args.run_id)
        elif args.command == "demo":
            from ct_operators.demo import run_demo

            result = run_demo(port=args.port)
            return 0 if result.get("completed") else 1
        else:
            result = up(args.port, args.mlflow_port)
        print(json.dumps(result, indent=2, default=str))
    except (ConfigError, ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # a state the message explains (no champion yet, store unusable): no traceback
        from ct_operators.serving import NoChampionError
        from ct_operators.store.base import FeatureStoreError

        if not isinstance(exc, (NoChampionError, FeatureStoreError)):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
