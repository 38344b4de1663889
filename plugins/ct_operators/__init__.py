"""ct-pipeline: pure logic (config, store, training, serving, monitoring) plus thin Airflow
hooks and operators in ``hooks/`` and ``operators/``. Importing this package imports no Airflow."""
