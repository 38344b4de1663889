"""Pure training steps: extract, validate, prepare, build/train, evaluate, decide. No Airflow here."""
