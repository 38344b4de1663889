"""Benchmarks of the ct-pipeline against its limits (issue 5): ``python -m bench --size tiny|small|full``.

Each figure is measured next to a baseline taken in the same run, so the ratios hold on a noisy,
shared 2-core machine; absolute numbers are only indicative. All state lives in a temporary data
dir (never the repository's ``data/``); MLflow uses a SQLite tracking store under it.
"""
