"""Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``):
it is how the ``iris`` and ``ct_feature_store`` connection types reach the UI's connection form."""
from __future__ import annotations


IRIS_FIELD_BEHAVIOUR = {
    "hidden-fields": [],
    "relabeling": {"schema": "Namespace", "login": "Username", "port": "Superserver port"},
    "placeholders": {"host": "iris (service name) or iris.example.com", "port": "1972", "schema": "USER",
                     "login": "_SYSTEM", "extra": '{"timeout": 10}'},
}


def get_provider_info() -> dict:
    return {
        "package-name": "ct-pipeline",
        "name": "ct-pipeline",
        "description": "Continuous training on Airflow 3: InterSystems IRIS / SQLite feature store hooks.",
        "versions": ["0.1.0"],
        "integrations": [{"integration-name": "InterSystems IRIS", "tags": ["software"]}],
        "hooks": [{"integration-name": "InterSystems IRIS", "python-modules": ["ct_operators.hooks.iris"]}],
        "connection-types": [
            {
                "hook-class-name": "ct_operators.hooks.iris.IrisHook",
                "hook-name": "InterSystems IRIS",
                "connection-type": "iris",
                # Airflow 3 reads the form's behaviour from here, without importing the hook.
                "ui-field-behaviour": IRIS_FIELD_BEHAVIOUR,
            },
        ],
    }
