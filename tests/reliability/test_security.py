"""Priority 5: secrets.

* no secret literal in any tracked file; ``.env.example`` holds placeholders only; ``.env`` is ignored;
* ``docker-compose.yaml`` takes every password from the environment, runs MLflow with ``--app-name
  basic-auth``, requires ``IRIS_PASSWORD``, and publishes no port of a service without authentication;
* a connection password (``AIRFLOW_CONN_CT_FEATURE_STORE``) never reaches logs, stdout/stderr, the audit
  log, MLflow tags/params/artifacts or any other file the pipeline writes, through the real training,
  prediction and monitoring steps, the CLI, and the IRIS store's repr and connection errors (real driver).
"""
from __future__ import annotations

import json
import logging
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from ct_operators import registry
from ct_operators.config import PROJECT_ROOT
from ct_operators.events import RunIds
from ct_operators.monitoring import evaluate_champion
from ct_operators.serving import PredictionService
from ct_operators.simulate import DriftSpec, insert_simulated
from ct_operators.store.factory import open_store, parse_connection, store_from_environment

from reliability_support import SEED_CSV, cli, cli_env, free_port, local_settings, train_and_promote

SECRET = "p4ss-SECRET-x"
THIS_FILE = Path(__file__).relative_to(PROJECT_ROOT).as_posix()

# a literal value given to a password/secret/token/key-like name, in code, YAML, INI, shell or .env files
ASSIGNED = re.compile(
    r"""(?ix)(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|secret[_-]?key)\w*["']?\s*[:=]\s*
        ["']([^"'\s$<>{}()]{4,})["']""")
FORMATS = {  # well-known credential formats
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "AWS access key id": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36}\b"),
    "Slack token": re.compile(r"\bxox[abpr]-[A-Za-z0-9-]{10,}"),
    "JWT": re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\."),
    "Fernet key": re.compile(r"\b[A-Za-z0-9_-]{43}=(?![A-Za-z0-9])"),
}
# reviewed matches that are references, not values
NOT_LITERALS = {("docker/postgres/init-mlflow-db.sh", "mlflow_password"): "psql variable set from $MLFLOW_DB_PASSWORD"}
FAKE = re.compile(r"(?i)fake|secret|not-logged|change-me|example|dummy|test")


def tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True).stdout
    return [PROJECT_ROOT / line for line in out.splitlines() if (PROJECT_ROOT / line).is_file()]


def test_no_secret_literal_in_tracked_files() -> None:
    findings = []
    for path in tracked_files():
        rel = path.relative_to(PROJECT_ROOT).as_posix()
        if rel == THIS_FILE or path.suffix in {".png", ".parquet", ".db"}:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for name, rx in FORMATS.items():
            findings += [f"{rel}: {name}: {m.group(0)[:12]}..." for m in rx.finditer(text)]
        for m in ASSIGNED.finditer(text):
            value = m.group(1)
            # test fixtures may use obviously fake values; product, deploy and docs files may not
            if rel.startswith("tests/") and FAKE.search(value):
                continue
            if value.lower().startswith("change-me") or (rel, value) in NOT_LITERALS:
                continue
            findings.append(f"{rel}: {m.group(0)[:60]}")
    names = {p.relative_to(PROJECT_ROOT).as_posix() for p in tracked_files()}
    assert ".env" not in names and not any(n.startswith("data/") for n in names)
    assert not any("passwords.json" in n or n.endswith((".pem", ".key")) for n in names)
    assert findings == []


def test_env_example_has_placeholders_only_and_env_is_ignored() -> None:
    values = {}
    for line in (PROJECT_ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    secret_names = [k for k in values if re.search(r"PASSWORD|SECRET|FERNET|TOKEN", k)]
    assert len(secret_names) >= 8, secret_names
    assert {k: values[k] for k in secret_names if not values[k].startswith("change-me")} == {}
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=PROJECT_ROOT).returncode
    assert ignored == 0, ".env is not git-ignored"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "docker-compose.yaml").read_text())


def test_compose_takes_every_secret_from_the_environment(compose: dict) -> None:
    literal = {}
    for name, service in compose["services"].items():
        env = service.get("environment") or {}
        env = dict(e.split("=", 1) for e in env) if isinstance(env, list) else env
        for key, value in env.items():
            if re.search(r"PASSWORD|SECRET|_KEY|TOKEN", key) and not key.endswith("_FILE"):
                if "${" not in str(value):
                    literal[f"{name}.{key}"] = value
        conn = env.get("AIRFLOW_CONN_CT_FEATURE_STORE")
        if conn:
            assert '"password": "${IRIS_PASSWORD:?' in conn, conn
    assert literal == {}


def test_compose_exposes_no_service_without_authentication(compose: dict) -> None:
    services = compose["services"]
    mlflow_cmd = [str(c) for c in services["mlflow"]["command"]]
    assert mlflow_cmd[mlflow_cmd.index("--app-name") + 1] == "basic-auth"
    assert services["mlflow"]["environment"]["MLFLOW_AUTH_ADMIN_PASSWORD"].startswith("${MLFLOW_ADMIN_PASSWORD")
    auth_ini = (PROJECT_ROOT / "docker" / "mlflow" / "basic_auth.ini").read_text()
    assert "admin_password" not in auth_ini and "default_permission = READ" in auth_ini
    assert services["iris"]["environment"]["IRIS_PASSWORD"].startswith("${IRIS_PASSWORD:?")  # required
    assert "--password-file" in (PROJECT_ROOT / "docker" / "iris" / "entrypoint.sh").read_text()
    # services that publish a port, and how each authenticates
    published = {name for name, s in services.items() if s.get("ports")}
    authenticated = {"mlflow": "basic-auth", "iris": "IRIS_PASSWORD", "minio": "MINIO_ROOT_PASSWORD",
                     "airflow-apiserver": "simple auth manager password file"}
    assert published <= set(authenticated), published - set(authenticated)
    for unauthenticated in ("postgres", "redis", "docker-socket-proxy"):
        assert not services.get(unauthenticated, {}).get("ports"), unauthenticated


def _all_bytes_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_connection_password_never_reaches_logs_audit_or_mlflow(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                                capfd: pytest.CaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings = local_settings(tmp_path / "data")
    db = tmp_path / "data" / "feature_store.db"
    conn = json.dumps({"conn_type": "sqlite", "host": str(db), "login": "ct", "password": SECRET})
    store = store_from_environment(settings, {"AIRFLOW_CONN_CT_FEATURE_STORE": conn})  # as the CLI opens it
    assert SECRET not in repr(store)
    store.init_schema()
    store.load_seed_csv(SEED_CSV)
    promoted = train_and_promote(settings, store, "manual__secret")["promoted"]
    assert promoted["promoted"]
    insert_simulated(settings, store, DriftSpec(points=15, slope=-3.0, offset=450.0, seed=9))
    PredictionService(settings, store).score_unscored()
    evaluate_champion(settings, store, RunIds("ct_monitoring", "scheduled__secret", "evaluate_champion"))

    # every MLflow tag, param and model-version tag, through the API
    client = registry.connect(settings)
    seen = []
    for exp in client.search_experiments():
        for run in client.search_runs([exp.experiment_id]):
            seen += [*run.data.tags.items(), *run.data.params.items()]
    for mv in client.search_model_versions(f"name = '{settings.registered_model_name}'"):
        seen += list(mv.tags.items())
    assert seen and not [kv for kv in seen if SECRET in str(kv)]
    # every byte the pipeline wrote: MLflow store and artifacts, audit log, staging, model cache, feature store
    leaked = [name for name, data in _all_bytes_under(tmp_path).items() if SECRET.encode() in data]
    assert leaked == []
    out, err = capfd.readouterr()
    assert SECRET not in caplog.text and SECRET not in out and SECRET not in err


def test_cli_never_prints_the_connection_password(tmp_path: Path) -> None:
    db = tmp_path / "fs.db"
    env = cli_env(tmp_path / "data", db)
    env["AIRFLOW_CONN_CT_FEATURE_STORE"] = json.dumps({"conn_type": "sqlite", "host": str(db), "password": SECRET})
    runs = [cli(env, "init-store"), cli(env, "simulate", "--points", "3"), cli(env, "predict")]  # predict: no champion
    env["AIRFLOW_CONN_CT_FEATURE_STORE"] = '{"conn_type": "sqlite", "password": "' + SECRET + '", "host": '  # malformed
    runs.append(cli(env, "simulate"))
    assert [r.returncode for r in runs] == [0, 0, 1, 2], [(r.args[3:], r.stderr[-300:]) for r in runs]
    for r in runs:
        assert SECRET not in r.stdout + r.stderr, (r.args, r.stdout[-500:], r.stderr[-500:])
    leaked = [name for name, data in _all_bytes_under(tmp_path / "data").items() if SECRET.encode() in data]
    assert leaked == []


def test_iris_store_repr_and_connection_error_hide_the_password() -> None:
    port = free_port()  # nothing listens there: the real IRIS driver fails to connect
    for value in (f"iris://ct:{SECRET}@127.0.0.1:{port}/USER",
                  json.dumps({"conn_type": "iris", "host": "127.0.0.1", "port": port, "schema": "USER",
                              "login": "ct", "password": SECRET})):
        conn = parse_connection(value)
        assert conn.password == SECRET and SECRET not in repr(conn)
        store = open_store(conn)
        assert SECRET not in repr(store)
        with pytest.raises(Exception) as err:
            store.connect()
        assert f"127.0.0.1:{port}" in str(err.value) and SECRET not in str(err.value)
