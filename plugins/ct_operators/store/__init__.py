"""Feature store: ``FeatureStore`` interface with SQLite (default) and IRIS implementations."""
from ct_operators.store.base import FeatureStore, FeatureStoreError
from ct_operators.store.types import Prediction, Sample, TimeWindow

__all__ = ["FeatureStore", "FeatureStoreError", "Prediction", "Sample", "TimeWindow"]
