"""Train/evaluate in their own container (DockerOperator, same image); imported only when
``execution_mode`` is ``docker`` so the default DAG never loads the Docker SDK."""
from __future__ import annotations

import os
from typing import Any

from airflow.providers.docker.operators.docker import DockerOperator
from docker.types import Mount

from ct_operators.config import Settings

PASSED_ENV_PREFIXES = ("CT_", "MLFLOW_", "AIRFLOW_CONN_")
SECRET_MARKERS = ("PASSWORD", "SECRET", "TOKEN", "AIRFLOW_CONN_")


class ContainerStepOperator(DockerOperator):
    """Runs ``python -m ct_operators run-step <task_id>`` in ``settings.docker_image``; the data dir
    volume is mounted at the same path, secrets go in ``private_environment`` (never logged)."""

    def __init__(self, *, task_id: str, settings: Settings, environ: dict[str, str] | None = None,
                 **kwargs: Any) -> None:
        env = {k: v for k, v in (os.environ if environ is None else environ).items()
               if k.startswith(PASSED_ENV_PREFIXES)}
        secret = {k: v for k, v in env.items() if any(m in k for m in SECRET_MARKERS)}
        super().__init__(
            task_id=task_id,
            image=settings.docker_image,
            docker_url=settings.docker_url,
            command=["python", "-m", "ct_operators", "run-step", task_id,
                     "--dag-id", "{{ dag.dag_id }}", "--run-id", "{{ run_id }}"],
            environment={**{k: v for k, v in env.items() if k not in secret}, "CT_DATA_DIR": str(settings.data_dir)},
            private_environment=secret,
            mounts=[Mount(source=settings.docker_data_volume, target=str(settings.data_dir), type="volume")],
            network_mode=settings.docker_network or None,
            auto_remove="success",
            mount_tmp_dir=False,
            do_xcom_push=True,
            **kwargs,
        )
