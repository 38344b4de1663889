"""Feature store: the ``FeatureStore`` interface (base.py) with SQLite (default) and IRIS implementations.

Import the submodules directly; this package stays import-light for DAG parsing."""
