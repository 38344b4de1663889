"""The project's distribution registers the `iris` connection type with Airflow (UI form + get_hook)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from ct_operators.provider_info import get_provider_info

PROBE = """
import json
from airflow.providers_manager import ProvidersManager
from airflow.models.connection import Connection
pm = ProvidersManager()
hook = pm.hooks.get("iris")
behaviour = pm.field_behaviours.get("iris") or {}
conn = Connection(conn_id="iris_probe", conn_type="iris", host="iris", port=1972, schema="USER")
print(json.dumps({"provider": "ct-pipeline" in pm.providers, "hook": hook.hook_class_name if hook else None,
                  "relabeling": behaviour.get("relabeling"), "get_hook": type(conn.get_hook()).__name__}))
"""


def test_iris_connection_type_is_registered(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["AIRFLOW_HOME"] = str(tmp_path)
    proc = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["provider"] is True
    assert found["hook"] == "ct_operators.hooks.iris.IrisHook"
    assert found["relabeling"]["schema"] == "Namespace"
    assert found["get_hook"] == "IrisHook"


def test_provider_info_names_an_importable_hook():
    info = get_provider_info()
    (conn_type,) = info["connection-types"]
    module, _, cls = conn_type["hook-class-name"].rpartition(".")
    hook_class = getattr(__import__(module, fromlist=[cls]), cls)
    assert hook_class.conn_type == conn_type["connection-type"] == "iris"
