"""Thin Airflow operators: read settings and ids from the context, call a pure step, return a small dict."""
