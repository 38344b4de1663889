"""Registry helpers that make a retried training or promotion idempotent, on a real local MLflow store."""
from __future__ import annotations

from pathlib import Path

import pytest

from ct_operators import registry
from ct_operators.config import Settings, load_settings

MODEL = "ct_retry_model"


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, object, str]:
    settings = load_settings({"data_dir": str(tmp_path_factory.mktemp("registry")), "registered_model_name": MODEL},
                             environ={})
    client = registry.connect(settings)
    experiment_id = registry.ensure_experiment(client, settings, "retries")
    client.create_registered_model(MODEL)
    return settings, client, experiment_id


def register(client, experiment_id: str, run_id: str | None = None) -> tuple[str, str]:
    run_id = run_id or client.create_run(experiment_id).info.run_id
    mv = client.create_model_version(MODEL, source=Path("/nonexistent/model").as_uri(), run_id=run_id)
    return run_id, str(mv.version)


def test_a_lost_registration_answer_leaves_one_version_per_run(mlflow_store) -> None:
    _, client, experiment_id = mlflow_store
    other_run, other_version = register(client, experiment_id)
    run_id, first = register(client, experiment_id)
    _, duplicate = register(client, experiment_id, run_id)  # the retried POST registered the run again

    kept, deleted = registry.keep_one_version_of_run(client, MODEL, run_id)
    assert (kept.version, deleted) == (first, [duplicate])
    assert [r.version for r in registry.versions_of_run(client, MODEL, run_id)] == [first]
    assert [r.version for r in registry.versions_of_run(client, MODEL, other_run)] == [other_version]  # untouched
    assert registry.keep_one_version_of_run(client, MODEL, client.create_run(experiment_id).info.run_id) == (None, [])


def test_a_duplicate_holding_an_alias_is_never_deleted(mlflow_store) -> None:
    _, client, experiment_id = mlflow_store
    run_id, first = register(client, experiment_id)
    _, aliased = register(client, experiment_id, run_id)
    client.set_registered_model_alias(MODEL, "staging", aliased)

    kept, deleted = registry.keep_one_version_of_run(client, MODEL, run_id)
    assert (kept.version, deleted) == (first, [])
    assert [r.version for r in registry.versions_of_run(client, MODEL, run_id)] == [first, aliased]


def test_set_champion_re_run_reports_the_real_previous_version(mlflow_store) -> None:
    settings, client, experiment_id = mlflow_store
    _, old = register(client, experiment_id)
    _, new = register(client, experiment_id)
    assert registry.set_champion(client, settings, old) is None
    assert registry.set_champion(client, settings, new).version == old
    again = registry.set_champion(client, settings, new)  # the promote task retried after the alias moved
    assert again is not None and again.version == old
    assert registry.version_by_alias(client, MODEL, "champion").version == new
    assert registry.version_by_alias(client, MODEL, "previous").version == old


def test_models_left_pending_by_an_interrupted_upload_are_marked_failed(mlflow_store) -> None:
    from mlflow.entities import LoggedModelStatus

    _, client, experiment_id = mlflow_store
    run_id = client.create_run(experiment_id).info.run_id
    pending = client.create_logged_model(experiment_id, name="model", source_run_id=run_id)
    complete = client.create_logged_model(experiment_id, name="model", source_run_id=run_id)
    client.finalize_logged_model(complete.model_id, LoggedModelStatus.READY)
    other = client.create_logged_model(experiment_id, name="explainer", source_run_id=run_id)

    assert registry.fail_unfinished_models(client, experiment_id, run_id, "model") == [pending.model_id]
    status = {m: client.get_logged_model(m).status for m in (pending.model_id, complete.model_id, other.model_id)}
    assert status == {pending.model_id: LoggedModelStatus.FAILED, complete.model_id: LoggedModelStatus.READY,
                      other.model_id: LoggedModelStatus.PENDING}
