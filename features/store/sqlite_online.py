"""Feast's SQLite online store with a leaner read path for single-client lookups.

Feast's SQLite store keeps one table per feature view and one row per (entity, feature), reads each view with
its own query and converts every row's timestamp. A decision needs one client's whole model vector (several
views) in well under a millisecond, so this store reads all the views of a request in one query and converts
one timestamp per entity and view. Writing, tables and schema are Feast's own; the response is built by
Feast's own helper, so callers see exactly what the stock store returns.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from feast import utils
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.sqlite import (
    SqliteOnlineStore,
    SqliteOnlineStoreConfig,
    _quote_id,
    _table_id,
)
from feast.protos.feast.types.Value_pb2 import Value as ValueProto


class LeanSqliteOnlineStoreConfig(SqliteOnlineStoreConfig):
    type: Literal["features.store.sqlite_online.LeanSqliteOnlineStore"] = (  # type: ignore[assignment]
        "features.store.sqlite_online.LeanSqliteOnlineStore"
    )


class LeanSqliteOnlineStore(SqliteOnlineStore):
    def _get_conn(self, config):
        fresh = not self._conn
        conn = super()._get_conn(config)
        if fresh:
            # Keep the hot pages memory-mapped and cached: lookups then rarely touch the file system.
            conn.execute("PRAGMA mmap_size = 1073741824")
            conn.execute("PRAGMA cache_size = -262144")
        return conn

    def _table_name(self, config, table) -> str:
        return _quote_id(_table_id(config.project, table, config.registry.enable_online_feature_view_versioning))

    def _read(self, config, requests: list[tuple[object, list[bytes], set[str] | None]], conn=None) -> list[list]:
        """One query over several views; per view, Feast's (timestamp, {feature: value}) row for each key.
        ``conn`` is a caller's own connection (the API's readers keep one per thread)."""
        parts, params = [], []
        for position, (table, keys, _) in enumerate(requests):
            where = "entity_key = ?" if len(keys) == 1 else f"entity_key IN ({','.join('?' * len(keys))})"
            params += keys  # one contiguous primary-key range per view; unwanted features are skipped below
            # `event_ts + 0` has no declared type, so sqlite3 returns the epoch instead of converting every row.
            parts.append(f"SELECT {position}, entity_key, feature_name, value, event_ts + 0 "
                         f"FROM {self._table_name(config, table)} WHERE {where}")
        found: list[dict] = [{} for _ in requests]
        wanted = [w for _, _, w in requests]
        conn = conn or self._get_conn(config)
        for position, key, feature, blob, epoch in conn.execute(" UNION ALL ".join(parts), params):
            want = wanted[position]
            if want is not None and feature not in want:
                continue
            entry = found[position].get(key)
            if entry is None:
                entry = found[position][key] = (epoch, {})
            value = ValueProto()
            value.ParseFromString(blob)
            entry[1][feature] = value
        out = []
        for (_, keys, _), by_key in zip(requests, found, strict=True):
            rows = []
            for key in keys:
                entry = by_key.get(key)
                rows.append((None, None) if entry is None else
                            (dt.datetime.fromtimestamp(int(entry[0]), tz=dt.UTC), entry[1]))
            out.append(rows)
        return out

    def _serialize(self, config, entity_keys) -> list[bytes]:
        version = config.entity_key_serialization_version
        return [serialize_entity_key(k, entity_key_serialization_version=version) for k in entity_keys]

    def online_read(self, config, table, entity_keys, requested_features=None):
        keys = self._serialize(config, entity_keys)
        (rows,) = self._read(config, [(table, keys, set(requested_features) if requested_features else None)])
        return rows

    def _read_features_per_fv(self, config, grouped_refs, join_key_values, entity_name_to_join_key_map,
                              online_features_response, full_feature_names,
                              include_feature_view_version_metadata) -> None:
        """All views of a request in one query, then Feast's own response builder per view."""
        plans = []
        for table, requested_features in grouped_refs:
            values, idxs, output_len = utils._get_unique_entities(table, join_key_values,
                                                                  entity_name_to_join_key_map)
            keys = self._serialize(config, utils._get_entity_key_protos(values))
            plans.append((table, requested_features, keys, idxs, output_len))
        found = self._read(config, [(table, keys, set(features)) for table, features, keys, _, _ in plans])
        for (table, requested_features, _, idxs, output_len), rows in zip(plans, found, strict=True):
            utils._populate_response_from_feature_data(
                requested_features, rows, idxs,
                online_features_response, full_feature_names, table, output_len,
                include_feature_view_version_metadata,
            )
