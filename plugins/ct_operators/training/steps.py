"""The seven ``ct_training`` steps as plain functions: settings + ids in, a small dict out.

Operators call these (in the Airflow worker or, for heavy steps, in a container); each step
logs to the one MLflow run of its DAG run and writes an audit event for its decision.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ct_operators import registry
from ct_operators.config import Settings
from ct_operators.events import RunIds, emit, utcnow
from ct_operators.store.base import FeatureStore
from ct_operators.store.types import TimeWindow
from ct_operators.training.data import extract_window, load_staged, run_folder, stage_frame, staged_path
from ct_operators.training.decide import Scores, decide_promotion
from ct_operators.training.metrics import regression_scores
from ct_operators.training.model import build_pipeline
from ct_operators.training.prepare import split_frame, xy
from ct_operators.training.validation import clean_frame, validate_frame

REGISTERED_VERSION_TAG = "ct.registered_version"
PROMOTED_AT_TAG = "ct.promoted_at"
TRAINING_SAMPLE_ARTIFACT = "data/training_features.parquet"


def output_path(settings: Settings, ids: RunIds, task_id: str) -> Path:
    return run_folder(settings.staging_dir, ids.dag_id, ids.run_id) / f"{task_id}.json"


def save_output(settings: Settings, ids: RunIds, task_id: str, result: dict) -> dict:
    """Each step's result is also kept in the run folder, where a containerised step reads its inputs."""
    path = output_path(settings, ids, task_id)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, default=str))
    tmp.replace(path)
    return result


def load_output(settings: Settings, ids: RunIds, task_id: str) -> dict:
    path = output_path(settings, ids, task_id)
    if not path.exists():
        raise FileNotFoundError(f"no output of task {task_id!r} at {path}; did it run for this DAG run?")
    return json.loads(path.read_text())


def _audit(settings: Settings, ids: RunIds, event: str, **fields: Any) -> dict:
    return emit(event, settings.audit_log, **ids.fields(), **fields)


def extract(settings: Settings, store: FeatureStore, ids: RunIds, window: TimeWindow) -> dict:
    """Check the model configuration first (fail at the start), then stage the window's rows."""
    build_pipeline(settings.model_class, settings.model_params, settings.preprocessor_class)
    store.start_training_run(ids.run_id, utcnow())
    frame = extract_window(store, window)
    uri = stage_frame(frame, run_folder(settings.staging_dir, ids.dag_id, ids.run_id) / "extracted.parquet")
    client = registry.connect(settings)
    experiment_id = registry.ensure_experiment(client, settings, settings.training_experiment)
    mlflow_run_id = registry.find_or_create_run(client, experiment_id, dag_id=ids.dag_id,
                                                airflow_run_id=ids.run_id, run_name=f"{ids.dag_id}/{ids.run_id}")
    import mlflow

    with mlflow.start_run(run_id=mlflow_run_id):
        mlflow.log_input(mlflow.data.from_pandas(frame, source=uri, name="point_samples",
                                                 targets=settings.target), context="training")
        mlflow.set_tags({"ct.window_start": str(window.as_dict()["start"]),
                         "ct.window_end": str(window.as_dict()["end"]), "ct.rows": str(len(frame))})
    _audit(settings, ids, "extracted", mlflow_run_id=mlflow_run_id, rows=len(frame), window=window.as_dict())
    return {"mlflow_run_id": mlflow_run_id, "dataset_uri": uri, "rows": len(frame), "window": window.as_dict()}


def validate_data(settings: Settings, ids: RunIds, extracted: dict) -> dict:
    """Errors fail the run (after the report is saved); warnings are kept in the report."""
    import mlflow

    frame = load_staged(extracted["dataset_uri"])
    report = validate_frame(frame, settings.features, settings.target, min_rows=settings.min_rows,
                            max_missing_fraction=settings.max_missing_fraction, iqr_factor=settings.iqr_factor,
                            outliers_are_errors=settings.outliers_are_errors)
    registry.connect(settings)
    with mlflow.start_run(run_id=extracted["mlflow_run_id"]):
        mlflow.log_dict(report.to_dict(), "validation/report.json")
        mlflow.set_tag("ct.validation", "failed" if report.errors else "passed")
    _audit(settings, ids, "validated", mlflow_run_id=extracted["mlflow_run_id"], passed=not report.errors,
           errors=[f.message for f in report.errors], warnings=[f.message for f in report.warnings])
    report.raise_for_errors()
    cleaned = clean_frame(frame, settings.features, settings.target)
    uri = stage_frame(cleaned, staged_path(extracted["dataset_uri"]).with_name("validated.parquet"))
    return {"mlflow_run_id": extracted["mlflow_run_id"], "dataset_uri": uri, "rows": len(cleaned),
            "warnings": len(report.warnings)}


def prepare(settings: Settings, ids: RunIds, validated: dict) -> dict:
    import mlflow

    train, test = split_frame(load_staged(validated["dataset_uri"]), test_size=settings.test_size, seed=settings.seed)
    folder = staged_path(validated["dataset_uri"]).parent
    out = {"mlflow_run_id": validated["mlflow_run_id"],
           "train_uri": stage_frame(train, folder / "train.parquet"),
           "test_uri": stage_frame(test, folder / "test.parquet"),
           "train_rows": len(train), "test_rows": len(test)}
    registry.connect(settings)
    with mlflow.start_run(run_id=validated["mlflow_run_id"]):
        mlflow.log_params({"split_seed": settings.seed, "test_size": settings.test_size,
                           "features": ",".join(settings.features), "target": settings.target})
    _audit(settings, ids, "prepared", **{k: v for k, v in out.items() if not k.endswith("_uri")})
    return out


def train(settings: Settings, ids: RunIds, prepared: dict) -> dict:
    """Fit, log and register; a retried task reuses the version it already registered."""
    import mlflow
    from mlflow.models import infer_signature

    client = registry.connect(settings)
    run_id = prepared["mlflow_run_id"]
    ref, duplicates = registry.keep_one_version_of_run(client, settings.registered_model_name, run_id)
    if ref is not None:  # a retry: an earlier try registered (maybe without hearing the answer)
        _finish_registration(settings, client, ids, run_id, ref.version)
        _audit(settings, ids, "trained", mlflow_run_id=run_id, model_version=ref.version, reused=True,
               deleted_duplicates=duplicates)
        return {"mlflow_run_id": run_id, "model_version": ref.version, "model_uri": ref.uri}
    abandoned = registry.fail_unfinished_models(client, client.get_run(run_id).info.experiment_id, run_id, "model")
    if abandoned:
        _audit(settings, ids, "abandoned_models_failed", mlflow_run_id=run_id, model_ids=abandoned)
    X, y = xy(load_staged(prepared["train_uri"]), settings.features, settings.target)
    pipeline = build_pipeline(settings.model_class, settings.model_params, settings.preprocessor_class)
    mlflow.sklearn.autolog(log_models=False, log_datasets=False, silent=True)
    with mlflow.start_run(run_id=run_id):
        pipeline.fit(X, y)
        _log_training_sample(X)
        info = mlflow.sklearn.log_model(
            pipeline, name="model", signature=infer_signature(X, pipeline.predict(X)),
            input_example=X.head(3), registered_model_name=settings.registered_model_name,
            pip_requirements=_pip_requirements())
        version = str(info.registered_model_version)
    mlflow.sklearn.autolog(disable=True)
    _finish_registration(settings, client, ids, run_id, version)
    _audit(settings, ids, "trained", mlflow_run_id=run_id, model_version=version, model_class=settings.model_class,
           train_rows=len(X))
    return {"mlflow_run_id": run_id, "model_version": version,
            "model_uri": f"models:/{settings.registered_model_name}/{version}"}


def _finish_registration(settings: Settings, client: Any, ids: RunIds, run_id: str, version: str) -> None:
    """Tags that mark the registration as complete; idempotent, so a retry can redo them."""
    client.set_tag(run_id, REGISTERED_VERSION_TAG, version)
    client.set_tag(run_id, "ct.model_class", settings.model_class)
    client.set_model_version_tag(settings.registered_model_name, version, "airflow.run_id", ids.run_id)


def evaluate(settings: Settings, ids: RunIds, prepared: dict, trained: dict) -> dict:
    """mlflow.models.evaluate on the holdout, plus plots and a SHAP explainer logged with the run."""
    import mlflow

    from ct_operators import plots

    client = registry.connect(settings)
    test = load_staged(prepared["test_uri"])
    data = test[[*settings.features, settings.target]].astype("float64")
    with mlflow.start_run(run_id=trained["mlflow_run_id"]):
        result = mlflow.models.evaluate(
            model=trained["model_uri"], data=data, targets=settings.target, model_type="regressor",
            evaluator_config={"log_model_explainability": True, "log_explainer": True, "ignore_exceptions": False,
                              "explainability_nsamples": max(len(data), 2)})
        model = mlflow.pyfunc.load_model(trained["model_uri"])
        predicted = np.asarray(model.predict(data[list(settings.features)]), dtype="float64")
        for name, fig in (("plots/predicted_vs_actual.png", plots.predicted_vs_actual(data[settings.target], predicted)),
                          ("plots/residuals.png", plots.residuals(data[settings.target], predicted))):
            mlflow.log_figure(fig, name)
            plots.close(fig)
        scores = regression_scores(data[settings.target], predicted)
        mlflow.log_metrics({"holdout_mae": scores.mae, "holdout_rmse": scores.rmse, "holdout_r2": scores.r2})
    explainer = explainer_uri(trained["mlflow_run_id"])
    if explainer is None:
        raise RuntimeError(f"SHAP explainer was not logged for MLflow run {trained['mlflow_run_id']}; "
                           "check the evaluate_model task log for the SHAP error")
    client.set_model_version_tag(settings.registered_model_name, trained["model_version"], "ct.explainer_uri", explainer)
    metrics = {"mae": scores.mae, "rmse": scores.rmse, "r2": scores.r2,
               "mlflow_r2_score": float(result.metrics.get("r2_score", scores.r2))}
    _audit(settings, ids, "evaluated", mlflow_run_id=trained["mlflow_run_id"], model_version=trained["model_version"],
           metrics=metrics, explainer_uri=explainer)
    return metrics


def explainer_uri(mlflow_run_id: str) -> str | None:
    import mlflow

    from mlflow.entities import LoggedModelStatus

    run = mlflow.get_run(mlflow_run_id)
    models = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id],
                                         filter_string=f"source_run_id = '{mlflow_run_id}'", output_format="list")
    # a retried evaluation logs a new explainer: the newest complete one, never a half-uploaded one
    found = sorted((m for m in models if m.name == "explainer" and m.status == LoggedModelStatus.READY),
                   key=lambda m: m.creation_timestamp, reverse=True)
    return found[0].model_uri if found else None


def validate_model(settings: Settings, ids: RunIds, prepared: dict, trained: dict) -> dict:
    """Challenger vs champion on the same holdout; the challenger must load from the registry and serve."""
    import mlflow

    from ct_operators import plots

    client = registry.connect(settings)
    test = load_staged(prepared["test_uri"])
    X, y = xy(test, settings.features, settings.target)
    serves, serve_error, challenger_pred = True, "", None
    try:
        challenger_pred = np.asarray(mlflow.pyfunc.load_model(trained["model_uri"]).predict(X), dtype="float64")
        if challenger_pred.shape != (len(X),) or not np.isfinite(challenger_pred).all():
            serves, serve_error = False, f"predictions have shape {challenger_pred.shape} or are not finite"
    except Exception as exc:  # the check's purpose: any load/predict failure is recorded as a rejection reason
        if _unreachable(exc):
            raise  # the registry is down, not the model: fail and retry rather than reject a good challenger
        serves, serve_error = False, f"{type(exc).__name__}: {exc}"
    challenger = regression_scores(y, challenger_pred) if serves else Scores(float("inf"), float("inf"), float("-inf"))
    champion_ref = registry.version_by_alias(client, settings.registered_model_name, settings.champion_alias)
    champion, champion_pred = None, None
    if champion_ref is not None and champion_ref.version != trained["model_version"]:
        champion_pred = np.asarray(mlflow.pyfunc.load_model(champion_ref.uri).predict(X), dtype="float64")
        champion = regression_scores(y, champion_pred)
    decision = decide_promotion(challenger, champion, r2_floor=settings.r2_floor, serves=serves, serve_error=serve_error)
    verdict = "promote" if decision.promote else "reject"
    tags = {"ct.decision": verdict, "ct.decision_reasons": "; ".join(decision.reasons),
            "ct.champion_version": champion_ref.version if champion_ref else "none"}
    with mlflow.start_run(run_id=trained["mlflow_run_id"]):
        mlflow.set_tags(tags)
        mlflow.log_dict({"challenger": challenger.as_dict(), "champion": champion.as_dict() if champion else None,
                         **decision.as_dict()}, "validation/model_comparison.json")
        if challenger_pred is not None:
            fig = plots.champion_vs_challenger(X[settings.features[0]], y, challenger_pred, champion_pred,
                                               feature=settings.features[0])
            mlflow.log_figure(fig, "plots/champion_vs_challenger.png")
            plots.close(fig)
    for key, value in tags.items():
        client.set_model_version_tag(settings.registered_model_name, trained["model_version"], key, value)
    _audit(settings, ids, "validated_model", mlflow_run_id=trained["mlflow_run_id"], model_version=trained["model_version"],
           decision=verdict, reasons=decision.reasons, challenger=challenger.as_dict(),
           champion=champion.as_dict() if champion else None)
    return {"promote": decision.promote, "reasons": decision.reasons, "model_version": trained["model_version"],
            "mlflow_run_id": trained["mlflow_run_id"],
            "champion_version": champion_ref.version if champion_ref else None}


def promote(settings: Settings, store: FeatureStore, ids: RunIds, decision: dict) -> dict:
    """Alias first (source of truth), then the serving pointer; a re-run repairs a half-done promotion."""
    client = registry.connect(settings)
    version, run_id = decision["model_version"], decision["mlflow_run_id"]
    pointer, repaired = registry.sync_serving_pointer(client, settings, store)
    if repaired:
        _audit(settings, ids, "pointer_repaired", serving_pointer=pointer)
    if not decision["promote"]:
        _audit(settings, ids, "rejected", mlflow_run_id=run_id, model_version=version, reasons=decision["reasons"])
        store.finish_training_run(ids.run_id, "not_promoted", utcnow())
        client.set_terminated(run_id, "FINISHED")
        return {"promoted": False, "model_version": version, "reasons": decision["reasons"], "serving_pointer": pointer}
    client.set_model_version_tag(settings.registered_model_name, version, PROMOTED_AT_TAG, utcnow().isoformat())
    old = registry.set_champion(client, settings, version)
    pointer, _ = registry.sync_serving_pointer(client, settings, store)
    client.set_tag(run_id, "ct.promoted", "true")
    _audit(settings, ids, "promoted", mlflow_run_id=run_id, model_version=version,
           previous_version=old.version if old else None, serving_pointer=pointer, reasons=decision["reasons"])
    store.finish_training_run(ids.run_id, "promoted", utcnow())
    client.set_terminated(run_id, "FINISHED")
    return {"promoted": True, "model_version": version, "previous_version": old.version if old else None,
            "serving_pointer": pointer}


def _unreachable(exc: BaseException) -> bool:
    """A connection failure to the MLflow server anywhere in the exception chain."""
    import requests

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError)):
            return True
        if "Max retries exceeded" in str(seen) or "Connection refused" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _log_training_sample(X, max_rows: int = 10_000) -> None:
    """Training features (a sample when large) as the reference for monitoring's drift statistic."""
    import tempfile

    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(TRAINING_SAMPLE_ARTIFACT).name
        X.sample(min(len(X), max_rows), random_state=0).to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path=str(Path(TRAINING_SAMPLE_ARTIFACT).parent))


def _pip_requirements() -> list[str]:
    """Pinned from the running environment: skips MLflow's slow requirement inference."""
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in ("mlflow", "scikit-learn", "pandas", "numpy", "cloudpickle")]


