"""docker-compose.yaml, checked without a Docker engine.

* schema: the file validates against the compose specification's JSON schema, vendored as
  ``compose-spec.json`` (from docker-compose 1.29.2 on PyPI, Apache-2.0; it predates a few newer
  keys such as top-level ``name`` and ``depends_on.restart``, which this file therefore avoids);
* structure: every Airflow process shares one image and one environment, long-running services
  have health checks, the feature-store connection is IRIS, the socket proxy allows only what the
  DockerOperator needs;
* secrets: no literal secret in the file; every variable it requires is in ``.env.example``, with a
  placeholder value;
* when a compose CLI is installed (``docker compose`` or Debian's ``docker-compose``), its own
  ``config`` check runs too; otherwise that test is skipped.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
SCHEMA = Path(__file__).with_name("compose-spec.json")
AIRFLOW_SERVICES = {"airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "airflow-worker", "ct-store-init"}
SECRET_NAME = re.compile(r"^(?!.*_(FILE|PATH)$).*(PASSWORD|SECRET|_KEY$|TOKEN)", re.IGNORECASE)
VAR = re.compile(r"(?<!\$)\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    pairs = [ln.split("=", 1) for ln in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    return {k.strip(): v.strip() for k, v in pairs}


def walk_strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from walk_strings(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk_strings(v, f"{path}[{i}]")
    elif isinstance(node, str):
        yield path, node


def test_validates_against_compose_spec(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator_cls = jsonschema.validators.validator_for(schema)
    errors = sorted(validator_cls(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_schema_rejects_a_broken_file() -> None:
    """The vendored schema is really applied (a typo'd key must fail)."""
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    broken = {"services": {"x": {"image": "busybox", "helthcheck": {"test": ["CMD", "true"]}}}}
    assert list(jsonschema.validators.validator_for(schema)(schema).iter_errors(broken))


def test_airflow_services_share_image_and_environment(compose: dict[str, Any]) -> None:
    common = compose["x-airflow-common"]
    services = compose["services"]
    assert AIRFLOW_SERVICES <= set(services)
    assert {s for s in services if s.startswith("airflow-")} <= AIRFLOW_SERVICES
    for name in AIRFLOW_SERVICES:
        assert services[name]["image"] == common["image"], name
        assert services[name]["environment"] == common["environment"], name
        assert services[name]["volumes"] == common["volumes"], name
    commands = {services[n]["command"] if isinstance(services[n]["command"], str) else " ".join(services[n]["command"])
                for n in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")}
    assert commands == {"api-server", "scheduler", "dag-processor", "triggerer"}
    assert "init-store" in " ".join(services["ct-store-init"]["command"])
    assert common["build"]["dockerfile"] == "docker/Dockerfile"


def test_dockerfile_installs_pinned_requirements() -> None:
    text = (ROOT / "docker" / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM apache/airflow:3\.3\.2-python3\.11$", text, re.MULTILINE)
    assert re.search(r"pip install .*-r \S*requirements\.txt -c \S*constraints\.txt", text)


def test_feature_store_connection_is_iris(compose: dict[str, Any]) -> None:
    env = compose["x-airflow-common"]["environment"]
    raw_conn = env["AIRFLOW_CONN_CT_FEATURE_STORE"]
    assert re.search(r'"password": "\$\{IRIS_PASSWORD[:?}]', raw_conn), "IRIS password must come from ${IRIS_PASSWORD}"
    conn = json.loads(VAR.sub("x", raw_conn))
    assert (conn["conn_type"], conn["host"], conn["port"]) == ("iris", "iris", 1972)
    assert env["MLFLOW_TRACKING_URI"] == env["CT_MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert compose["services"]["iris"]["image"] == "intersystems/iris-community:2025.1"


def test_long_running_services_have_healthchecks(compose: dict[str, Any]) -> None:
    one_shot = {name for name, svc in compose["services"].items() if svc.get("restart") == "no"}
    assert one_shot == {"minio-init", "iris-volume-init", "ct-store-init", "airflow-init"}
    for name, svc in compose["services"].items():
        if name not in one_shot:
            assert svc.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for dep, cond in (svc.get("depends_on") or {}).items():
            expected = "service_completed_successfully" if dep in one_shot else "service_healthy"
            assert cond["condition"] == expected, f"{name} -> {dep}"


def test_profiles_and_executor(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["redis"]["profiles"] == ["celery"] == services["airflow-worker"]["profiles"]
    assert "CeleryExecutor" not in compose["x-airflow-common"]["environment"]["AIRFLOW__CORE__EXECUTOR"]
    assert services["airflow-worker"]["command"] == "celery worker"


def test_docker_socket_proxy_is_minimal(compose: dict[str, Any]) -> None:
    proxy = compose["services"]["docker-socket-proxy"]
    assert proxy["image"].startswith("tecnativa/docker-socket-proxy")
    assert {k: str(v) for k, v in proxy["environment"].items()} == {"CONTAINERS": "1", "IMAGES": "1", "POST": "1"}
    assert proxy["volumes"] == ["/var/run/docker.sock:/var/run/docker.sock:ro"]
    assert compose["networks"]["docker-api"]["internal"] is True
    mounts = [v for s in compose["services"].values() for v in s.get("volumes", [])]
    assert sum("docker.sock" in str(v) for v in mounts) == 1, "only the proxy mounts the Docker socket"


def test_no_literal_secrets(compose: dict[str, Any], env_example: dict[str, str]) -> None:
    for name, svc in {"x-airflow-common": compose["x-airflow-common"], **compose["services"]}.items():
        for key, value in (svc.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                assert VAR.fullmatch(str(value)), f"{name}.{key} must come from ${{...}}, got {value!r}"
    for path, text in walk_strings(compose):
        for user_info in re.findall(r"://[^/\s:@]+:([^@\s]+)@", text):
            assert VAR.fullmatch(user_info), f"{path}: password in URL must be ${{...}}"
    raw = COMPOSE.read_text(encoding="utf-8")
    for key, value in env_example.items():
        if SECRET_NAME.search(key):
            assert value.startswith("change-me"), f".env.example {key} must be a placeholder"
            assert value not in raw


def test_every_required_variable_is_in_env_example(env_example: dict[str, str]) -> None:
    raw = COMPOSE.read_text(encoding="utf-8")
    required = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)(?::\?[^}]*)?\}", raw)) - {
        m for m in re.findall(r"(?<!\$)\$\{([A-Z0-9_]+):-", raw)}
    assert required, "expected ${VAR} references"
    missing = sorted(required - set(env_example))
    assert not missing, f"variables used without default but absent from .env.example: {missing}"


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


@pytest.mark.skipif(_compose_cli() is None, reason="no compose CLI installed (docker compose / docker-compose)")
def test_compose_cli_config_accepts_the_file() -> None:
    cli = _compose_cli()
    assert cli is not None
    for profile in ([], ["--profile", "celery"]):
        result = subprocess.run([*cli, "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE), *profile,
                                 "config", "-q"], capture_output=True, text=True, cwd=ROOT)
        assert result.returncode == 0, result.stderr
