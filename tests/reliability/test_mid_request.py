"""MLflow killed in the middle of one request, with artifacts going through the server as deployed
(``mlflow server --serve-artifacts``).

A proxy between the pipeline and a real server crashes the server (SIGKILL) at a chosen request: while
the request is still arriving, or after the server answered but before the client read the answer (the
server did the work, the client cannot know). Each step fails naming the server; after a restart, the
Airflow retry of the step (the same call again) completes it with no duplicate version, no second
champion change, and alias and serving pointer agreeing. The tests run in order on one registry.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from ct_operators import registry
from ct_operators.config import Settings, load_settings
from ct_operators.events import RunIds, read_events
from ct_operators.store.types import TimeWindow
from ct_operators.training import steps

from reliability_support import KillingProxy, MlflowServer, new_store

pytestmark = pytest.mark.e2e

MODEL = "ct_mid_request_model"


@dataclass
class Outage:
    server: MlflowServer
    proxy: KillingProxy
    settings: Settings
    store: Any

    def crash_during(self, pattern: bytes, when: str, call: Callable[[], Any]) -> BaseException:
        """Run ``call`` with the server set to die at ``pattern``; restart the server; return the error."""
        self.proxy.arm(pattern, when)
        try:
            with pytest.MonkeyPatch.context() as mp, pytest.raises(Exception) as err:
                mp.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")  # fail fast while the server is down
                mp.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
                call()
        finally:
            if not self.server.healthy():
                self.server.start()
        assert self.proxy.fired.is_set(), (f"failed before any request matched {pattern!r}: "
                                           f"{type(err.value).__name__}: {err.value}; last requests: "
                                           f"{self.proxy.requests[-5:]}")
        assert f"127.0.0.1:{self.proxy.port}" in str(err.value), str(err.value)[:800]  # names the server
        return err.value

    def client(self):
        return registry.connect(self.settings)

    def versions(self) -> list[str]:
        return sorted(v.version for v in self.client().search_model_versions(f"name = '{MODEL}'"))

    def alias(self, alias: str) -> str | None:
        ref = registry.version_by_alias(self.client(), MODEL, alias)
        return ref.version if ref else None


@pytest.fixture(autouse=True)
def _client_retries_as_deployed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside the crash itself, the MLflow client retries as deployed: a freshly restarted server may drop
    a pooled connection once, which the client's own retry absorbs."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "5")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outage]:
    root = tmp_path_factory.mktemp("mid_request")
    server = MlflowServer(root / "server", serve_artifacts=True)
    server.start()
    proxy = KillingProxy(server)
    settings = load_settings({"data_dir": str(root / "data"), "mlflow_tracking_uri": proxy.uri,
                              "registered_model_name": MODEL, "training_experiment": f"{MODEL}_training",
                              "monitoring_experiment": f"{MODEL}_monitoring"}, environ={})
    try:
        yield Outage(server, proxy, settings, new_store(settings.sqlite_path))
    finally:
        proxy.close()
        server.stop()


def prepared_run(outage: Outage, run_id: str) -> tuple[RunIds, dict]:
    ids = RunIds(dag_id="ct_training", run_id=run_id)
    extracted = steps.extract(outage.settings, outage.store, ids, TimeWindow())
    return ids, steps.prepare(outage.settings, ids, steps.validate_data(outage.settings, ids, extracted))


def test_model_upload_cut_off_then_the_retry_registers_one_version(outage: Outage) -> None:
    ids, prepared = prepared_run(outage, "manual__first")
    outage.crash_during(rb"PUT /api/2.0/mlflow-artifacts/artifacts/\S*/models/\S*/model\.skops", "request",
                        lambda: steps.train(outage.settings, ids, prepared))
    assert outage.versions() == []  # nothing registered from a half-uploaded model

    trained = steps.train(outage.settings, ids, prepared)  # the task's retry
    assert trained["model_version"] == "1" and outage.versions() == ["1"]
    statuses = sorted(str(m.status) for m in outage.client().search_logged_models(
        experiment_ids=[outage.client().get_run(trained["mlflow_run_id"]).info.experiment_id],
        filter_string=f"source_run_id = '{trained['mlflow_run_id']}' AND name = 'model'"))
    assert statuses == ["FAILED", "READY"], statuses  # the half-uploaded attempt is marked, not left pending

    steps.evaluate(outage.settings, ids, prepared, trained)
    decision = steps.validate_model(outage.settings, ids, prepared, trained)
    promoted = steps.promote(outage.settings, outage.store, ids, decision)
    assert promoted["promoted"] and outage.store.get_serving_pointer() == f"models:/{MODEL}/1"


def test_registration_answer_lost_then_the_retry_reuses_the_version(outage: Outage) -> None:
    ids, prepared = prepared_run(outage, "manual__second")
    outage.crash_during(rb"POST /api/2.0/mlflow/model-versions/create", "response",
                        lambda: steps.train(outage.settings, ids, prepared))
    assert outage.versions() == ["1", "2"]  # the server registered v2; the client never heard of it

    trained = steps.train(outage.settings, ids, prepared)  # the task's retry
    assert trained["model_version"] == "2"
    assert outage.versions() == ["1", "2"]  # no v3 for the same training run
    assert (outage.alias("champion"), outage.store.get_serving_pointer()) == ("1", f"models:/{MODEL}/1")


def test_explainer_upload_cut_off_then_the_retry_tags_a_loadable_explainer(outage: Outage) -> None:
    import mlflow

    ids, prepared = prepared_run(outage, "manual__second")  # same Airflow run: same MLflow run, same split
    trained = steps.train(outage.settings, ids, prepared)
    outage.crash_during(rb"PUT /api/2.0/mlflow-artifacts/artifacts/\S*/models/\S*/artifacts/explainer", "request",
                        lambda: steps.evaluate(outage.settings, ids, prepared, trained))

    metrics = steps.evaluate(outage.settings, ids, prepared, trained)
    assert metrics["r2"] > 0.5
    uri = outage.client().get_model_version(MODEL, "2").tags["ct.explainer_uri"]
    explainer = mlflow.shap.load_explainer(uri)  # the tagged explainer is the complete one
    assert explainer is not None


def test_champion_alias_answer_lost_then_the_retry_completes_the_promotion(outage: Outage) -> None:
    ids, prepared = prepared_run(outage, "manual__second")
    trained = steps.train(outage.settings, ids, prepared)
    decision = {**steps.validate_model(outage.settings, ids, prepared, trained), "promote": True}
    promoted_before = len(read_events(outage.settings.audit_log, "promoted"))

    outage.crash_during(rb'POST /api/2.0/mlflow/registered-models/alias[\s\S]*"champion"', "response",
                        lambda: steps.promote(outage.settings, outage.store, ids, decision))
    # the server moved the alias, the pointer was not written: the state a crash leaves, detectable
    assert (outage.alias("champion"), outage.alias("previous")) == ("2", "1")
    assert outage.store.get_serving_pointer() == f"models:/{MODEL}/1"

    done = steps.promote(outage.settings, outage.store, ids, decision)  # the task's retry
    assert done["promoted"] and (done["model_version"], done["previous_version"]) == ("2", "1")
    assert (outage.alias("champion"), outage.alias("previous")) == ("2", "1")
    assert outage.store.get_serving_pointer() == f"models:/{MODEL}/2"
    promoted = read_events(outage.settings.audit_log, "promoted")[promoted_before:]
    assert [(e["model_version"], e["previous_version"]) for e in promoted] == [("2", "1")]  # one change
    assert outage.versions() == ["1", "2"]


def test_promote_task_killed_after_the_alias_moved_is_repaired_by_its_rerun(outage: Outage) -> None:
    """The task process itself dies (SIGKILL) right after the server moved ``champion``, before it wrote the
    serving pointer: the state is detectable (alias and pointer disagree) and the task's re-run repairs it."""
    import json
    import os
    import signal
    import subprocess
    import sys

    from ct_operators.config import PROJECT_ROOT

    ids, prepared = prepared_run(outage, "manual__third")
    trained = steps.train(outage.settings, ids, prepared)
    assert trained["model_version"] == "3"
    decision = {**steps.validate_model(outage.settings, ids, prepared, trained), "promote": True}
    promoted_before = len(read_events(outage.settings.audit_log, "promoted"))

    settings = {"data_dir": str(outage.settings.data_dir), "mlflow_tracking_uri": outage.proxy.uri,
                "registered_model_name": MODEL, "training_experiment": f"{MODEL}_training",
                "monitoring_experiment": f"{MODEL}_monitoring"}
    task: dict = {}
    outage.proxy.arm(rb'POST /api/2.0/mlflow/registered-models/alias[\s\S]*"champion"', "response",
                     crash=lambda: os.kill(task["process"].pid, signal.SIGKILL))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CT_"))}
    env["PYTHONPATH"] = str(PROJECT_ROOT / "plugins")
    task["process"] = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("reliability_worker.py")), "promote",
         json.dumps({"settings": settings, "db": str(outage.store.path), "run_id": ids.run_id, "decision": decision})],
        env=env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = task["process"].communicate(timeout=300)
    assert task["process"].returncode == -signal.SIGKILL, f"the task was not killed:\n{out[-2000:]}\n{err[-2000:]}"
    assert outage.server.healthy()  # only the task died

    # killed half-way: the alias moved, the pointer did not, nothing was audited as promoted
    assert (outage.alias("champion"), outage.alias("previous")) == ("3", "2")
    assert outage.store.get_serving_pointer() == f"models:/{MODEL}/2"
    assert len(read_events(outage.settings.audit_log, "promoted")) == promoted_before

    done = steps.promote(outage.settings, outage.store, ids, decision)  # Airflow's re-run of promote_model
    assert done["promoted"] and (done["model_version"], done["previous_version"]) == ("3", "2")
    assert outage.store.get_serving_pointer() == f"models:/{MODEL}/3"
    assert (outage.alias("champion"), outage.alias("previous")) == ("3", "2")
    promoted = read_events(outage.settings.audit_log, "promoted")[promoted_before:]
    assert [(e["model_version"], e["previous_version"]) for e in promoted] == [("3", "2")]
    assert outage.versions() == ["1", "2", "3"]
