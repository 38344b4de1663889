"""IrisHook: a ``DbApiHook`` over ``iris.dbapi`` (intersystems-irispython), connection type ``iris``.

Why a DbApiHook: ``SQLExecuteQueryOperator``, ``get_records``/``get_df`` and ``insert_rows`` then work on
IRIS like on any SQL database. The feature store itself is reached through ``get_feature_store()``.

Connection fields: host, port (superserver, 1972), schema = IRIS namespace (``USER``), login, password;
extra ``{"timeout": 10}``. Registered as connection type ``iris`` through the project's provider entry point
(``pyproject.toml`` → ``ct_operators.provider_info``), so it appears in the UI's connection form.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from airflow.providers.common.sql.hooks.sql import DbApiHook

if TYPE_CHECKING:
    from ct_operators.store.iris import IrisFeatureStore


class IrisHook(DbApiHook):
    """Interact with InterSystems IRIS over its DB-API driver (qmark parameters)."""

    conn_name_attr = "iris_conn_id"
    default_conn_name = "iris_default"
    conn_type = "iris"
    hook_name = "InterSystems IRIS"
    supports_autocommit = True
    supports_executemany = True
    _test_connection_sql = "SELECT 1"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._placeholder = "?"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Label the fields as IRIS names them (the same as the provider info Airflow 3 reads)."""
        from ct_operators.provider_info import IRIS_FIELD_BEHAVIOUR

        return {key.replace("-", "_"): value for key, value in IRIS_FIELD_BEHAVIOUR.items()}

    def _store_connection(self) -> Any:
        from ct_operators.store.factory import StoreConnection

        conn = self.connection
        return StoreConnection(conn_type=conn.conn_type or "iris", host=conn.host, port=conn.port,
                               schema=conn.schema, login=conn.login, password=conn.password,
                               extra=conn.extra_dejson)

    def get_conn(self) -> Any:
        """A new ``iris.dbapi`` connection (autocommit off unless ``set_autocommit`` says otherwise)."""
        import iris.dbapi

        from ct_operators.store.iris import iris_connect_kwargs

        return iris.dbapi.connect(**iris_connect_kwargs(self._store_connection()))

    def get_feature_store(self) -> "IrisFeatureStore":
        """The ct-pipeline feature store in this connection's namespace."""
        from ct_operators.store.iris import IrisFeatureStore

        return IrisFeatureStore.from_connection(self._store_connection())

    def _make_common_data_structure(self, result: Any) -> tuple | list[tuple] | None:
        """IRIS returns ``DataRow`` objects; callers and XCom expect tuples (ADR-0002 of common.sql)."""
        if result is None:
            return None
        if isinstance(result, Sequence) and not isinstance(result, (str, bytes)) and (
                not result or not _is_scalar(result[0])):
            return [tuple(row) for row in result]
        return tuple(result)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, bytes, int, float)) or value is None
