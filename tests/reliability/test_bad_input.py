"""Priority 1: every user-facing input rejects malformed values with a message naming the field, and
SQL-injection strings in text inputs are bound as data (or rejected) without any extra statement.

Inputs: DAG Params (validated by each DAG's own ParamsDict, in a fresh interpreter that imports the
real DAG files), the CLI (``python -m ct_operators`` subprocesses on a real SQLite file), CT_* settings,
the Python prediction API, the drift simulator, and the store/MLflow calls that carry text.
"""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from ct_operators.config import PROJECT_ROOT, ConfigError, load_settings
from ct_operators.simulate import DriftSpec, insert_simulated
from ct_operators.store.types import Prediction, Sample, TimeWindow
from ct_operators.training.data import parse_window

from reliability_support import TABLES, cli, cli_env, make_traced_store, new_store, schema_of, table_counts

INJECTIONS = [
    "x'); DROP TABLE point_samples;--",
    "1; DELETE FROM predictions",
    "' OR '1'='1",
    "models:/a'/1\"; UPDATE ml_config SET config_value = 'pwned';--",
]

# -- DAG Params --------------------------------------------------------------------------------

PARAM_CASES = [
    # (dag module, param, bad value)
    ("ct_training", "min_rows", -1),
    ("ct_training", "min_rows", "ten"),
    ("ct_training", "test_size", 2),
    ("ct_training", "test_size", 0),
    ("ct_training", "model_params", "fit_intercept=true"),
    ("ct_training", "model_params", [1, 2]),
    ("ct_training", "model_class", ""),
    ("ct_training", "window_start", 20260101),
    ("ct_training", "require_approval", "maybe"),
    ("ct_training", "seed", 1.5),
    ("ct_training", "reason", "r" * 501),
    ("ct_simulate_drift", "points", 0),
    ("ct_simulate_drift", "points", -5),
    ("ct_simulate_drift", "points", 2.5),
    ("ct_simulate_drift", "noise", -1),
    ("ct_simulate_drift", "slope", "steep"),
    ("ct_simulate_drift", "seed", "abc"),
    ("ct_simulate_drift", "label", "l" * 101),
    ("ct_monitoring", "monitoring_min_samples", 1),
    ("ct_monitoring", "r2_threshold", "high"),
    ("ct_monitoring", "retrain_cooldown_minutes", -5),
    ("ct_prediction", "batch_size", 0),
]

PARAMS_SCRIPT = r"""
import copy, importlib, json, sys
cases = json.loads(sys.argv[1])
out = {"defaults": {}, "cases": []}
for mod in sorted({c[0] for c in cases}):
    dag = importlib.import_module(mod).dag
    try:
        copy.deepcopy(dag.params).validate()
        out["defaults"][mod] = "ok"
    except Exception as exc:
        out["defaults"][mod] = f"{type(exc).__name__}: {exc}"
for mod, key, bad in cases:
    params = copy.deepcopy(importlib.import_module(mod).dag.params)
    try:
        params[key] = bad
        params.validate()
        out["cases"].append([mod, key, "ACCEPTED"])
    except Exception as exc:
        out["cases"].append([mod, key, f"{type(exc).__name__}: {exc}"])
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def param_results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("airflow_home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CT_"))}
    env.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT / "plugins"), str(PROJECT_ROOT / "dags")])})
    proc = subprocess.run([sys.executable, "-c", PARAMS_SCRIPT, json.dumps(PARAM_CASES)], env=env,
                          capture_output=True, text=True, timeout=600, cwd=home)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


def test_default_params_of_every_dag_are_valid(param_results: dict) -> None:
    assert param_results["defaults"] == {m: "ok" for m in {c[0] for c in PARAM_CASES}}


@pytest.mark.parametrize("case", PARAM_CASES, ids=[f"{m}.{k}={v!r}"[:60] for m, k, v in PARAM_CASES])
def test_bad_param_is_rejected_naming_it(param_results: dict, case: tuple) -> None:
    mod, key, _ = case
    got = {(m, k, i): msg for i, (m, k, msg) in enumerate(param_results["cases"])}
    message = got[(mod, key, PARAM_CASES.index(case))]
    assert message.startswith("ParamValidationError"), message
    assert f"param {key}" in message, message


def test_what_params_cannot_express_is_caught_by_the_task_naming_the_field() -> None:
    """A string window bound and x_min >= x_max pass the Param schema; the task's first step rejects them."""
    with pytest.raises(ValueError, match="window_start: 'garbage' is not an ISO-8601"):
        parse_window("garbage", None)
    with pytest.raises(ValueError, match="window_end"):
        parse_window(None, "2026-13-45T00:00:00Z")
    with pytest.raises(ValueError, match="not before its end"):
        parse_window("2026-02-01T00:00:00Z", "2026-01-01T00:00:00Z")
    with pytest.raises(ValueError, match="'x_min'"):
        DriftSpec.from_mapping({"points": 5, "x_min": 10.0, "x_max": 1.0})
    # the operators build their settings from the Params: a bypassed Param is still refused by name
    for overrides, field in (({"min_rows": -1}, "min_rows"), ({"test_size": 2}, "test_size"),
                             ({"model_params": "[1]"}, "model_params"), ({"min_rows": "ten"}, "min_rows"),
                             ({"r2_threshold": "nan"}, "r2_threshold"), ({"require_approval": "maybe"}, "require_approval")):
        with pytest.raises(ConfigError, match=f"'{field}'"):
            load_settings(overrides, environ={})


# -- the drift simulator and the Python API --------------------------------------------------

@pytest.mark.parametrize(("kwargs", "field"), [
    ({"points": 0}, "points"), ({"points": -1}, "points"), ({"points": True}, "points"), ({"points": 1.0}, "points"),
    ({"slope": float("nan")}, "slope"), ({"offset": float("inf")}, "offset"), ({"noise": -0.1}, "noise"),
    ({"x_min": 5.0, "x_max": 5.0}, "x_min"), ({"seed": "7"}, "seed"), ({"label": 7}, "label"),
    ({"label": "l" * 101}, "label"), ({"slope": "1.2"}, "slope"),
])
def test_drift_spec_rejects_bad_values_naming_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"'{field}'"):
        DriftSpec(**kwargs)


def test_python_prediction_api_rejects_bad_ids_and_naive_windows(tmp_path: Path) -> None:
    from ct_operators.serving import PredictionService

    settings = load_settings({"data_dir": str(tmp_path)}, environ={})
    store = new_store(settings.sqlite_path)
    before = table_counts(store.path)
    service = PredictionService(settings, store)
    for bad in (["1"], [1.0], [True], [None], ["1; DROP TABLE point_samples"]):
        with pytest.raises(TypeError, match="sample ids must be integers"):
            service.score_ids(bad)
    naive = datetime(2026, 1, 1)
    with pytest.raises(ValueError, match="window start is a naive datetime"):
        TimeWindow(start=naive)
    with pytest.raises(ValueError, match="window end is a naive datetime"):
        TimeWindow(end=naive)
    with pytest.raises(TypeError, match="window start must be a datetime"):
        TimeWindow(start="2026-01-01")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size"):
        service.score_unscored(batch_size=0)
    with pytest.raises(ValueError, match="batch_size"):
        service.score_unscored(batch_size=-3)
    for kwargs, field in (({"x": "1"}, "'x'"), ({"x": 1.0, "y": float("nan")}, "'y'"), ({"x": True}, "'x'"),
                          ({"x": 1.0, "event_ts": naive}, "event_ts")):
        with pytest.raises((TypeError, ValueError), match=field):
            Sample(**kwargs)
    with pytest.raises(ValueError, match="naive"):
        store.insert_predictions([Prediction(1, 1.0, "m", "1", "r", 0.1, naive)])
    assert table_counts(store.path) == before  # nothing was written by any refused call


# -- the CLI -------------------------------------------------------------------------------------

@pytest.fixture
def cli_setup(tmp_path: Path):
    db = tmp_path / "store" / "feature_store.db"
    store = new_store(db)
    return store, cli_env(tmp_path / "data", db)


@pytest.mark.parametrize(("args", "extra_env", "names"), [
    (["simulate", "--points", "-1"], {}, "'points'"),
    (["simulate", "--points", "ten"], {}, "--points"),
    (["predict", "--ids", "1", "two"], {}, "--ids"),
    (["predict", "--batch-size", "0"], {}, "batch_size"),
    (["simulate"], {"CT_TEST_SIZE": "2"}, "'test_size'"),
    (["simulate"], {"AIRFLOW_CONN_CT_FEATURE_STORE": '{"conn_type": "sqlite", "host": '},
     "AIRFLOW_CONN_CT_FEATURE_STORE"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_cli_rejects_bad_options_with_exit_2_naming_the_field(cli_setup, args, extra_env, names) -> None:
    store, env = cli_setup
    before = table_counts(store.path)
    proc = cli({**env, **extra_env}, *args)
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert names in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert table_counts(store.path) == before


# -- SQL injection ---------------------------------------------------------------------------------

def _template_regex(sql: str) -> re.Pattern:
    """The statement with each ``?`` replaced by what SQLite's expanded SQL prints for a bound value."""
    literal = r"(?:'(?:[^']|'')*'|-?[0-9][0-9.eE+-]*|NULL|x'[0-9a-fA-F]*')"
    parts = [re.escape(p) for p in sql.split("?")]
    return re.compile(literal.join(parts), re.DOTALL)


def assert_only(store, *names: str) -> None:
    """Every data statement the store ran is one of the project's SQL files (``include/sql/sqlite``) with
    its parameters bound as literals, and the named ones were among them: nothing else ran."""
    library = {p.stem: _template_regex(store.sql[p.stem]) for p in store.sql.folder.glob("*.sql") if p.stem != "schema"}
    ran = store.data_statements()
    assert ran, "no statement was traced"
    used = set()
    for statement in ran:
        matches = [name for name, rx in library.items() if rx.fullmatch(statement)]
        assert matches, f"unexpected statement: {statement!r}"
        used.update(matches)
    assert set(names) <= used, f"expected statements not run: {set(names) - used}"


@pytest.mark.parametrize("text", INJECTIONS)
def test_injection_in_simulator_label_is_stored_as_data(tmp_path: Path, text: str) -> None:
    settings = load_settings({"data_dir": str(tmp_path)}, environ={})
    store = make_traced_store(tmp_path / "fs.db")
    schema = schema_of(store.path)
    spec = DriftSpec.from_mapping({"points": 3, "seed": 1, "label": text})  # as the DAG's Params hand it over
    assert insert_simulated(settings, store, spec)["inserted"] == 3
    assert_only(store, "insert_sample")
    assert len(store.data_statements()) == 3
    assert store.fetch_samples()["label"].tolist() == [text] * 3
    assert schema_of(store.path) == schema
    assert table_counts(store.path)["point_samples"] == 3


@pytest.mark.parametrize("text", INJECTIONS)
def test_injection_in_ids_and_window_strings_is_rejected_before_any_statement(tmp_path: Path, text: str) -> None:
    store = make_traced_store(tmp_path / "fs.db")
    with pytest.raises(ValueError):
        store.fetch_samples_by_ids([text])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="window_start"):
        parse_window(text, None)
    with pytest.raises(ValueError, match="window_end"):
        parse_window(None, "2026-01-01T00:00:00Z" + text)
    assert store.data_statements() == []


@pytest.mark.parametrize("text", INJECTIONS)
def test_injection_in_model_name_keys_run_ids_and_reasons_is_bound(tmp_path: Path, text: str) -> None:
    now = datetime.now(timezone.utc)
    store = make_traced_store(tmp_path / "fs.db")
    store.insert_samples([Sample(x=float(i), y=2.0 * i, label="ok", event_ts=now - timedelta(minutes=i))
                          for i in range(1, 4)])
    ids = store.fetch_samples()["id"].tolist()
    store.statements.clear()
    written = store.insert_predictions([Prediction(i, 1.0, text, text, text, 0.5, now) for i in ids])
    assert written == 3
    assert store.fetch_unscored(text, text, 0, 10).empty
    assert len(store.fetch_unscored("other", "1", 0, 10)) == 3
    assert len(store.fetch_labelled_predictions(text, text, TimeWindow(start=now - timedelta(hours=1),
                                                                      end=now + timedelta(hours=1)))) == 3
    store.set_config(text, text)
    assert store.get_config(text) == text
    store.set_serving_pointer(text)
    assert store.get_serving_pointer() == text
    store.start_training_run(text, now)
    assert store.active_training_runs(now - timedelta(hours=1)) == [text]
    store.finish_training_run(text, text, now)
    refused = store.claim_retraining(now=now, cooldown=timedelta(0), lease=timedelta(hours=1), reason=text,
                                     window=TimeWindow(start=now - timedelta(hours=1)), monitoring_run_id=text)
    assert refused is None
    assert_only(store, "insert_prediction", "select_unscored_samples", "select_labelled_predictions",
                "upsert_config", "select_config", "upsert_training_run", "select_active_training_runs",
                "finish_training_run", "select_last_trigger", "insert_retrain_trigger")
    counts = table_counts(store.path)
    assert {t: counts[t] for t in TABLES} == {"point_samples": 3, "predictions": 3, "ml_config": 2,
                                              "training_runs": 1, "retrain_triggers": 1}
    with store.transaction() as cur:
        cur.execute("SELECT reason, monitoring_run_id FROM retrain_triggers")
        assert cur.fetchall() == [(text, text)]
        cur.execute("SELECT DISTINCT model_name, model_version, mlflow_run_id FROM predictions")
        assert cur.fetchall() == [(text, text, text)]


def test_injection_in_airflow_run_id_cannot_select_another_mlflow_run(tmp_path: Path) -> None:
    """``find_or_create_run`` builds an MLflow filter string from the Airflow run id: quotes are escaped."""
    from ct_operators import registry

    settings = load_settings({"data_dir": str(tmp_path)}, environ={})
    client = registry.connect(settings)
    exp = registry.ensure_experiment(client, settings, settings.training_experiment)
    victim = registry.find_or_create_run(client, exp, dag_id="ct_training", airflow_run_id="manual__victim",
                                         run_name="victim")
    made = {}
    texts = ("x' OR tags.`airflow.dag_id` = 'ct_training", "manual__victim' OR '1'='1", "a\\' OR 1=1 --",
             'it\'s "both" quotes', "back\\slash", 'manual__victim" OR "1"="1')
    for text in texts:
        made[text] = registry.find_or_create_run(client, exp, dag_id="ct_training", airflow_run_id=text, run_name="x")
        assert made[text] != victim, text
        assert client.get_run(made[text]).data.tags["airflow.run_id"] == text
        # and the same id finds its own run again (a retried task)
        assert registry.find_or_create_run(client, exp, dag_id="ct_training", airflow_run_id=text,
                                           run_name="x") == made[text]
    assert len(set(made.values())) == len(texts)
    assert len(client.search_runs([exp])) == len(texts) + 1  # no duplicate run for a retried id


@pytest.mark.parametrize("text", INJECTIONS[:1])
def test_injection_through_the_cli_is_data_or_exit_2(cli_setup, text: str) -> None:
    store, env = cli_setup
    schema, before = schema_of(store.path), table_counts(store.path)
    proc = cli(env, "simulate", "--points", "2", "--seed", "3", "--label", text)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert store.fetch_samples()["label"].tolist()[-2:] == [text, text]
    proc = cli(env, "predict", "--start", text)
    assert proc.returncode == 2 and "window_start" in proc.stderr, proc.stderr[-2000:]
    after = table_counts(store.path)
    assert schema_of(store.path) == schema
    assert after == {**before, "point_samples": before["point_samples"] + 2}
    assert not math.isnan(store.fetch_samples()["x"].sum())
