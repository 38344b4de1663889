"""MLflow: tracking set-up, the training run, model registration, aliases and the serving pointer.

The registry alias ``champion`` is the source of truth; the serving pointer follows it and is
repaired whenever the two disagree (e.g. after a promotion killed half-way).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ct_operators.config import Settings

NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"


def connect(settings: Settings) -> MlflowClient:
    """Point MLflow at the configured store (tracking + registry) and return a client."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keeps task logs readable
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    if settings.tracking_uri.startswith("sqlite:///"):
        settings.artifact_root.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def ensure_experiment(client: MlflowClient, settings: Settings, name: str) -> str:
    """Experiment id; created with its artifacts under the data dir when the store is local."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = (settings.artifact_root / name).as_uri() if not settings.mlflow_tracking_uri else None
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:
        experiment = client.get_experiment_by_name(name)  # created concurrently by another task
        if experiment is None:
            raise
        return experiment.experiment_id


def find_or_create_run(client: MlflowClient, experiment_id: str, *, dag_id: str, airflow_run_id: str,
                       run_name: str) -> str:
    """One MLflow run per Airflow DAG run: a retried task finds the run it created before."""
    literal = filter_literal(airflow_run_id)
    if literal is not None:
        existing = client.search_runs([experiment_id], filter_string=f"tags.`airflow.run_id` = {literal}",
                                      max_results=1)
    else:  # holds both quote characters: no MLflow filter literal can express it, compare in Python
        existing = [r for r in client.search_runs([experiment_id], max_results=50_000)
                    if r.data.tags.get("airflow.run_id") == airflow_run_id][:1]
    if existing:
        return existing[0].info.run_id
    run = client.create_run(experiment_id, run_name=run_name,
                            tags={"airflow.dag_id": dag_id, "airflow.run_id": airflow_run_id})
    return run.info.run_id


def filter_literal(value: str) -> str | None:
    """``value`` as an MLflow search-filter string literal. The filter grammar has no escape character
    (a backslash is literal), so the value is quoted with a quote character it does not contain;
    None when it contains both."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    return None


def is_not_found(exc: MlflowException) -> bool:
    return getattr(exc, "error_code", "") == NOT_FOUND or "not found" in str(exc).lower()


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str
    run_id: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def version_by_alias(client: MlflowClient, name: str, alias: str) -> ModelRef | None:
    """The version holding ``alias``, or None when the alias (or the model) does not exist yet."""
    try:
        mv = client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if is_not_found(exc):
            return None
        raise
    return ModelRef(name=name, version=str(mv.version), run_id=mv.run_id or "")


def get_version(client: MlflowClient, name: str, version: str) -> ModelRef:
    mv = client.get_model_version(name, str(version))
    return ModelRef(name=name, version=str(mv.version), run_id=mv.run_id or "")


def versions_of_run(client: MlflowClient, name: str, run_id: str) -> list[ModelRef]:
    """Versions of ``name`` registered from MLflow run ``run_id``, oldest first."""
    found = client.search_model_versions(f"run_id = '{run_id}'")  # run ids are hex: safe as a literal
    refs = [ModelRef(name=name, version=str(mv.version), run_id=run_id) for mv in found if mv.name == name]
    return sorted(refs, key=lambda ref: int(ref.version))


def keep_one_version_of_run(client: MlflowClient, name: str, run_id: str) -> tuple[ModelRef | None, list[str]]:
    """The version registered from ``run_id``, if any, after deleting any later duplicates of it.

    A registration whose answer was lost (server crash, proxy time-out) is retried by the MLflow client
    or by the Airflow task: the server may then hold two versions of the same run. The oldest is kept;
    later ones were never tagged, aliased or served. Returns (kept, deleted versions).
    """
    refs = versions_of_run(client, name, run_id)
    if not refs:
        return None, []
    deleted = []
    for extra in refs[1:]:
        if client.get_model_version(name, extra.version).aliases:
            continue  # never delete what an alias names
        client.delete_model_version(name, extra.version)
        deleted.append(extra.version)
    return refs[0], deleted


def fail_unfinished_models(client: MlflowClient, experiment_id: str, run_id: str, model_name: str) -> list[str]:
    """Mark logged models of ``run_id`` left PENDING by an interrupted upload as FAILED (ids returned),
    so the MLflow UI does not show them as still being written."""
    from mlflow.entities import LoggedModelStatus

    models = client.search_logged_models(experiment_ids=[experiment_id], filter_string=f"source_run_id = '{run_id}'")
    failed = [m.model_id for m in models if m.name == model_name and m.status == LoggedModelStatus.PENDING]
    for model_id in failed:
        client.finalize_logged_model(model_id, LoggedModelStatus.FAILED)
    return failed


def set_champion(client: MlflowClient, settings: Settings, version: str) -> ModelRef | None:
    """Move ``previous`` to the old champion, then ``champion`` to ``version``; returns the old one.

    Ordered so that a kill at any point leaves a state ``sync_serving_pointer`` repairs.
    """
    name = settings.registered_model_name
    old = version_by_alias(client, name, settings.champion_alias)
    if old is not None and old.version == str(version):  # a re-run after the alias already moved
        return version_by_alias(client, name, settings.previous_alias)
    if old is not None:
        client.set_registered_model_alias(name, settings.previous_alias, old.version)
    client.set_registered_model_alias(name, settings.champion_alias, str(version))
    return old


def pointer_for(ref: ModelRef) -> str:
    return ref.uri


def sync_serving_pointer(client: MlflowClient, settings: Settings, store: Any) -> tuple[str | None, bool]:
    """Make the store's serving pointer name the champion; returns (pointer, whether it was repaired)."""
    champion = version_by_alias(client, settings.registered_model_name, settings.champion_alias)
    current = store.get_serving_pointer()
    if champion is None:
        return current, False
    wanted = pointer_for(champion)
    if current != wanted:
        store.set_serving_pointer(wanted)
        return wanted, True
    return current, False


def parse_pointer(pointer: str) -> tuple[str, str]:
    """``models:/<name>/<version>`` -> (name, version)."""
    prefix = "models:/"
    body = pointer[len(prefix):] if pointer.startswith(prefix) else ""
    name, _, version = body.rpartition("/")
    if not name or not version.isdigit():
        raise ValueError(f"serving pointer {pointer!r} is not of the form models:/<name>/<version>")
    return name, version
