"""Airflow hooks: resolve Airflow connections into the pure-logic feature store."""
