#!/bin/bash
# airflow-init: migrate the metadata database, then write the simple auth manager's password file
# for the UI admin from the environment (CT_AIRFLOW_ADMIN_USER / CT_AIRFLOW_ADMIN_PASSWORD).
set -euo pipefail
airflow db migrate
python - <<'PY'
import json
import os
from pathlib import Path

path = Path(os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
path.parent.mkdir(parents=True, exist_ok=True)
path.write_text(json.dumps({os.environ["CT_AIRFLOW_ADMIN_USER"]: os.environ["CT_AIRFLOW_ADMIN_PASSWORD"]}))
path.chmod(0o600)
print(f"airflow-init: UI user {os.environ['CT_AIRFLOW_ADMIN_USER']!r} written to {path}")
PY
