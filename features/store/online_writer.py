"""Writes fresh indicator values of single clients into the Feast online store (SQLite or Redis).

Kept apart from the readers on purpose: the decision path only reads. A write goes through the online store's own
``online_write_batch`` (what ``feast materialize`` and ``FeatureStore.write_to_online_store`` end in), so the
stored layout is exactly the one materialize writes: the lean SQLite store keeps one row per client and view (the
whole row is rewritten: the client's other indicators are read first and kept), Redis one hash per client. The
SQLite file is switched to write-ahead logging, so that readers are not blocked by these writes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.types import Bool, Float64, Int64, String

from features.store.online_reader import OnlineStoreUnavailable, python_value
from features.store.sqlite_online import LeanSqliteOnlineStore

_SETTERS = {Float64: ("double_val", float), Int64: ("int64_val", int), Bool: ("bool_val", bool),
            String: ("string_val", str)}


def _proto(setter: tuple[str, type], value: object) -> ValueProto:
    if value is None:
        return ValueProto()
    attribute, convert = setter
    return ValueProto(**{attribute: convert(value)})


class OnlineWriter:
    """Reads and rewrites whole client rows of chosen feature views."""

    def __init__(self, store, view_names: list[str]) -> None:
        self.store = store
        self.config = store.config
        self.online_store = store._get_provider().online_store
        self.views = {name: store.get_feature_view(name) for name in view_names}
        self.types = {name: {f.name: f.dtype for f in view.features} for name, view in self.views.items()}
        # Per view and indicator: the protobuf field and the Python conversion (looked up once, not per value).
        self._setters = {name: {n: _SETTERS[t] for n, t in types.items()} for name, types in self.types.items()}
        self.join_key = next(iter(self.views.values())).entity_columns[0].name
        if isinstance(self.online_store, LeanSqliteOnlineStore):
            # Write-ahead logging: decisions keep reading while events are written (in SQLite's default rollback
            # journal a write blocks every reader until it commits). The mode is kept in the file.
            self.online_store._get_conn(self.config).execute("PRAGMA journal_mode = WAL")
        if type(self.online_store).__name__ == "RedisOnlineStore":
            # Writes happen under the event journal's lock: a stopped Redis must fail them at once, not after
            # redis-py's retries with backoffs (the events stay in the journal and are applied later).
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            client = self.online_store._get_client(self.config.online_store)
            client.set_retry(Retry(NoBackoff(), 0))
            kwargs = client.connection_pool.connection_kwargs
            for name in ("socket_timeout", "socket_connect_timeout"):
                if kwargs.get(name) is None:
                    kwargs[name] = 1.0

    def _key(self, client_id: str) -> EntityKeyProto:
        return EntityKeyProto(join_keys=[self.join_key], entity_values=[ValueProto(string_val=client_id)])

    def read(self, client_ids: list[str]) -> dict[str, dict[str, dict[str, object]]]:
        """Per client with a row in every view: view → every indicator's current value."""
        keys = [self._key(c) for c in client_ids]
        found: dict[str, dict[str, dict[str, object]]] = {}
        try:
            for name, view in self.views.items():
                rows = self.online_store.online_read(self.config, view, keys, list(self.types[name]))
                for client_id, (_, features) in zip(client_ids, rows, strict=True):
                    if features is None:
                        continue
                    values = {n: python_value(v) for n, v in features.items()}
                    if all(v is None for v in values.values()):  # Redis: an unknown key has empty fields
                        continue
                    found.setdefault(client_id, {})[name] = values
        except Exception as e:
            raise OnlineStoreUnavailable(f"the online store failed: {e}") from e
        return {c: views for c, views in found.items() if len(views) == len(self.views)}

    def ping(self) -> None:
        """Raise OnlineStoreUnavailable unless the store answers a read now."""
        self.read(["__events_probe__"])

    def write(self, rows: Mapping[str, Mapping[str, Mapping[str, object]]], stamp: dt.datetime) -> None:
        """Write ``client → view → values`` (each a view's whole row) with event time ``stamp``."""
        created = dt.datetime.now(dt.UTC)
        try:
            for name, view in self.views.items():
                setters = self._setters[name]
                data = [(self._key(client_id), {n: _proto(setters[n], v) for n, v in by_view[name].items()}, stamp,
                         created)
                        for client_id, by_view in rows.items() if name in by_view]
                if data:
                    self.online_store.online_write_batch(self.config, view, data, None)
        except Exception as e:
            raise OnlineStoreUnavailable(f"the online store failed: {e}") from e
