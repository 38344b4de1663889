"""FeatureStoreHook: turns the ``ct_feature_store`` Airflow connection into a FeatureStore."""
from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from ct_operators.store.base import FeatureStore


class FeatureStoreHook(BaseHook):
    """Connection types ``sqlite`` (host = database file) and ``iris``."""

    conn_name_attr = "feature_store_conn_id"
    default_conn_name = "ct_feature_store"
    hook_name = "ct-pipeline feature store"

    def __init__(self, feature_store_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.feature_store_conn_id = feature_store_conn_id

    def get_conn(self) -> "FeatureStore":
        from ct_operators.store.factory import StoreConnection, open_store

        conn = self.get_connection(self.feature_store_conn_id)
        return open_store(StoreConnection(
            conn_type=conn.conn_type or "", host=conn.host, port=conn.port, schema=conn.schema,
            login=conn.login, password=conn.password, extra=conn.extra_dejson))
