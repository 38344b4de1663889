"""Priority 3: faults against real components.

(a) the SQLite feature store locked by another connection (``BEGIN EXCLUSIVE``) during ``insert_predictions``;
(b) the model cache deleted or corrupted -> refilled from the MLflow server, corruption caught by checksum;
(c) a promotion killed between moving the alias and writing the serving pointer -> repaired by the next
    prediction, monitoring or promote run;
(d) the MLflow server killed (SIGKILL) while training / validation / promotion / prediction / monitoring
    steps run -> each fails with an error naming the server; after a restart alias and pointer are unchanged
    and agree, and the interrupted promotion completes when re-run.

(b)-(d) use the real ``mlflow server`` and its champion (session fixtures) and run in this order; they are
marked e2e (a server start, two trainings through it and a restart).
"""
from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from ct_operators import registry
from ct_operators.events import RunIds, read_events, utcnow
from ct_operators.monitoring import evaluate_champion
from ct_operators.serving import PredictionService
from ct_operators.simulate import DriftSpec, insert_simulated
from ct_operators.store.base import FeatureStoreError
from ct_operators.store.types import Prediction
from ct_operators.training import steps

from reliability_support import Champion, new_store, table_counts


def predictions_for(store, ids: list[int], version: str = "1") -> list[Prediction]:
    now = utcnow()
    return [Prediction(i, float(i), "m", version, "run", 0.1, now) for i in ids]


# -- (a) locked feature store --------------------------------------------------------------------------

@pytest.fixture
def locked_store(tmp_path: Path):
    """A seeded store and a second connection that can take the write lock on the same file."""
    store = new_store(tmp_path / "fs.db", busy_timeout_s=30.0)
    holder = sqlite3.connect(store.path, isolation_level=None, timeout=0)
    yield store, holder
    holder.close()


def test_locked_store_waits_then_writes_the_whole_batch(locked_store) -> None:
    store, holder = locked_store
    ids = store.fetch_samples()["id"].tolist()
    holder.execute("BEGIN EXCLUSIVE")
    outcome: dict = {}

    def write() -> None:
        try:
            outcome["written"] = store.insert_predictions(predictions_for(store, ids))
        except BaseException as exc:  # reported below
            outcome["error"] = exc

    writer = threading.Thread(target=write)
    writer.start()
    time.sleep(1.0)
    assert writer.is_alive(), f"the write did not wait for the lock: {outcome}"  # blocked, not failed
    assert holder.execute("SELECT COUNT(*) FROM predictions").fetchone()[0] == 0
    holder.execute("COMMIT")
    writer.join(timeout=120)
    assert outcome == {"written": len(ids)}
    assert store.count_predictions() == len(ids)


def test_lock_held_past_the_busy_timeout_fails_clearly_and_writes_nothing(tmp_path: Path, locked_store) -> None:
    from ct_operators.store.sqlite import SqliteFeatureStore

    store, holder = locked_store
    impatient = SqliteFeatureStore(store.path, busy_timeout_s=0.3)
    ids = store.fetch_samples()["id"].tolist()
    store.insert_predictions(predictions_for(store, ids[:3], version="0"))  # earlier, committed work
    before = table_counts(store.path)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(FeatureStoreError, match=r"is locked by another writer.*busy timeout of 0\.3 ?s") as err:
            impatient.insert_predictions(predictions_for(store, ids))
        assert str(store.path) in str(err.value)
    finally:
        holder.execute("ROLLBACK")
    assert table_counts(store.path) == before  # no partial batch; the earlier rows are intact
    assert impatient.insert_predictions(predictions_for(store, ids)) == len(ids)  # and it works once released
    assert store.count_predictions() == 3 + len(ids)


def test_a_failing_row_rolls_back_the_whole_batch(locked_store) -> None:
    store, _ = locked_store
    ids = store.fetch_samples()["id"].tolist()
    batch = predictions_for(store, ids) + predictions_for(store, [10_000_000])  # no such sample: FK violation
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        store.insert_predictions(batch)
    assert store.count_predictions() == 0


# -- (b)-(d) against a real MLflow server -------------------------------------------------------------

@pytest.mark.e2e
def test_b_deleted_or_corrupted_cache_is_refilled_from_the_server(champ: Champion) -> None:
    import shutil

    cache_folder = champ.settings.model_cache_dir / champ.settings.registered_model_name / "1"
    shutil.rmtree(cache_folder, ignore_errors=True)  # other tests may have filled it: start cold
    service = PredictionService(champ.settings, champ.store)
    first = service.score_unscored()
    assert (first.model_version, first.model_source, first.written) == ("1", "mlflow", 11)
    assert service.cache.is_valid(champ.settings.registered_model_name, "1")

    shutil.rmtree(cache_folder)  # deleted
    insert_simulated(champ.settings, champ.store, DriftSpec(points=4, seed=1))
    summary = PredictionService(champ.settings, champ.store).score_unscored()
    assert (summary.model_source, summary.written) == ("mlflow", 4)

    victim = next(p for p in cache_folder.glob("model.*"))  # the serialized model: same size, one byte flipped
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    assert not service.cache.is_valid(champ.settings.registered_model_name, "1")
    insert_simulated(champ.settings, champ.store, DriftSpec(points=3, seed=2))
    summary = PredictionService(champ.settings, champ.store).score_unscored()
    assert (summary.model_source, summary.written) == ("mlflow", 3)
    assert service.cache.is_valid(champ.settings.registered_model_name, "1")
    assert champ.predicted_versions() == {"1": 18}


@pytest.mark.e2e
def test_c_half_done_promotion_is_repaired_by_the_next_runs(champ: Champion) -> None:
    """Killed after the alias moved, before the pointer was written: simulated by calling set_champion only."""
    repairs_before = len(read_events(champ.settings.audit_log, "pointer_repaired"))
    registry.set_champion(champ.client(), champ.settings, "2")
    assert (champ.alias(), champ.pointer()) == ("2", champ.uri("1"))  # the disagreement a kill leaves behind

    # the next prediction run repairs the pointer and scores with the alias's version
    insert_simulated(champ.settings, champ.store, DriftSpec(points=5, seed=3))
    summary = PredictionService(champ.settings, champ.store).score_unscored()
    assert champ.pointer() == champ.uri("2")
    assert summary.model_version == "2"
    repairs = read_events(champ.settings.audit_log, "pointer_repaired")[repairs_before:]
    assert [(e["previous_pointer"], e["serving_pointer"]) for e in repairs] == [(champ.uri("1"), champ.uri("2"))]

    # monitoring repairs it too
    champ.store.set_serving_pointer(champ.uri("1"))
    evaluate_champion(champ.settings, champ.store, RunIds("ct_monitoring", "scheduled__half", "evaluate_champion"))
    assert champ.pointer() == champ.uri("2")

    # and re-running promote_model of the interrupted run completes it without touching 'previous'
    champ.store.set_serving_pointer(champ.uri("1"))
    decision = {**champ.second["decision"], "promote": True}
    done = steps.promote(champ.settings, champ.store, champ.second["ids"], decision)
    assert done["promoted"] and done["serving_pointer"] == champ.uri("2")
    assert (champ.alias(), champ.alias("previous"), champ.pointer()) == ("2", "1", champ.uri("2"))


@pytest.mark.e2e
def test_d_server_killed_mid_pipeline_fails_clearly_and_changes_nothing(champ: Champion) -> None:
    server = champ.server
    where = f"127.0.0.1:{server.port}"
    before = (champ.alias(), champ.alias("previous"), champ.pointer())
    assert before == ("2", "1", champ.uri("2"))
    cache_root = champ.settings.model_cache_dir / champ.settings.registered_model_name
    insert_simulated(champ.settings, champ.store, DriftSpec(points=6, seed=4))
    v2_scored = champ.predicted_versions().get("2", 0)
    promoted_events = len(read_events(champ.settings.audit_log, "promoted"))
    # a challenger (v1 again, by its own training run) asks to be promoted while the server is down
    ids = RunIds("ct_training", "manual__during_outage", "promote_model")
    decision = {"promote": True, "reasons": ["test"], "model_version": "1",
                "mlflow_run_id": champ.client().get_model_version(champ.settings.registered_model_name, "1").run_id}

    server.stop()
    try:
        failures = {}
        calls = {
            "train": lambda: steps.train(champ.settings, champ.second["ids"], champ.second["prepared"]),
            "evaluate": lambda: steps.evaluate(champ.settings, champ.second["ids"], champ.second["prepared"],
                                               champ.second["trained"]),
            "validate_model": lambda: steps.validate_model(champ.settings, champ.second["ids"],
                                                           champ.second["prepared"], champ.second["trained"]),
            "promote": lambda: steps.promote(champ.settings, champ.store, ids, decision),
            "monitoring": lambda: evaluate_champion(champ.settings, champ.store,
                                                    RunIds("ct_monitoring", "scheduled__outage", "evaluate_champion")),
        }
        for name, call in calls.items():
            with pytest.raises(Exception) as err:
                call()
            failures[name] = f"{type(err.value).__name__}: {err.value}"
        for name, message in failures.items():
            assert where in message, f"{name}: {message[:500]}"

        # prediction with a warm cache keeps serving the champion through the outage (pointer fast path) ...
        served = PredictionService(champ.settings, champ.store).score_unscored()
        assert (served.model_version, served.written) == ("2", 6)
        # ... and with a cold cache it fails naming the server, writing nothing
        import shutil

        shutil.rmtree(cache_root)
        insert_simulated(champ.settings, champ.store, DriftSpec(points=2, seed=5))
        with pytest.raises(Exception) as err:
            PredictionService(champ.settings, champ.store).score_unscored()
        assert where in str(err.value), str(err.value)[:500]
        assert champ.predicted_versions()["2"] == v2_scored + 6  # only the warm-cache run wrote
    finally:
        server.start()

    assert (champ.alias(), champ.alias("previous"), champ.pointer()) == before  # nothing moved, still agree
    assert len(read_events(champ.settings.audit_log, "promoted")) == promoted_events
    assert champ.client().get_model_version(champ.settings.registered_model_name, "1").tags.get(
        steps.PROMOTED_AT_TAG) is not None  # v1's own promotion tag, from its first promotion only
    # after the restart everything works again: the cold cache is refilled and the pending rows scored
    summary = PredictionService(champ.settings, champ.store).score_unscored()
    assert (summary.model_version, summary.model_source, summary.written) == ("2", "mlflow", 2)
    # the registry holds exactly the two versions: no duplicate registration from the failed train call
    versions = champ.client().search_model_versions(f"name = '{champ.settings.registered_model_name}'")
    assert sorted(v.version for v in versions) == ["1", "2"]
