"""Feast's SQLite online store laid out for single-client lookups: one row per entity and feature view.

Feast's own SQLite store keeps one row per (entity, feature), so a decision's vector (several views, about 70
indicators) costs about 70 rows read and decoded. This store keeps, per view, one row per entity holding the
view's feature names and all its values in one protobuf (``RepeatedValue``), so a client's whole vector is one
primary-key lookup per view, in one query. It is a complete Feast online store: ``feast materialize`` writes it
through :meth:`online_write_batch`, ``get_online_features`` reads it, and values come back as Feast's own
``ValueProto``, exactly as the stock store returns them.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Sequence
from typing import Literal

from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.sqlite import SqliteOnlineStore, SqliteOnlineStoreConfig
from feast.protos.feast.types.Value_pb2 import RepeatedValue

from features.store import feast_internals as feast_private


class LeanSqliteOnlineStoreConfig(SqliteOnlineStoreConfig):
    type: Literal["features.store.sqlite_online.LeanSqliteOnlineStore"] = (  # type: ignore[assignment]
        "features.store.sqlite_online.LeanSqliteOnlineStore"
    )


def _epoch(stamp: dt.datetime | None) -> float | None:
    if stamp is None:
        return None
    return (stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=dt.UTC)).timestamp()


@functools.lru_cache(maxsize=256)
def _names(text: str) -> tuple[str, ...]:
    """A row's feature names (every row of a view holds the same text: split once)."""
    return tuple(text.split(","))


@functools.lru_cache(maxsize=256)
def _wanted_positions(text: str, wanted: frozenset[str] | None) -> tuple[tuple[int, str], ...]:
    """(position in the row, name) of each wanted feature of a row whose names are ``text``, in row order (every
    row of a view holds the same names: worked out once per view and request, so a read touches only the values
    it returns, not every feature of the view)."""
    return tuple((k, name) for k, name in enumerate(_names(text)) if wanted is None or name in wanted)


class LeanSqliteOnlineStore(SqliteOnlineStore):
    def _table_name(self, config, table) -> str:
        return feast_private.quote_sqlite_id(f"{feast_private.sqlite_table_name(config, table)}__by_entity")

    def _create(self, conn, config, table) -> None:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {self._table_name(config, table)} (entity_key BLOB PRIMARY KEY,"
                     " feature_names TEXT NOT NULL, feature_values BLOB NOT NULL, event_ts REAL, created_ts REAL)"
                     " WITHOUT ROWID")

    def update(self, config, tables_to_delete, tables_to_keep, entities_to_delete, entities_to_keep,
               partial: bool) -> None:
        # A view's table is created by its first write (materialize), not here: until then a read fails, the API
        # says the online store is not ready and decides rules-only, instead of answering "unknown client" from
        # an empty table (as it would between `apply` and `materialize` of a store made by an older layout).
        conn = feast_private.sqlite_connection(self, config)
        for table in tables_to_delete:
            conn.execute(f"DROP TABLE IF EXISTS {self._table_name(config, table)}")
        conn.commit()

    def online_write_batch(self, config, table, data, progress) -> None:
        """One row per entity: the view's values in one protobuf, replacing the entity's previous row."""
        conn = feast_private.sqlite_connection(self, config)
        version = config.entity_key_serialization_version
        sql = (f"INSERT INTO {self._table_name(config, table)} "
               "(entity_key, feature_names, feature_values, event_ts, created_ts) VALUES (?, ?, ?, ?, ?) "
               "ON CONFLICT(entity_key) DO UPDATE SET feature_names = excluded.feature_names, "
               "feature_values = excluded.feature_values, event_ts = excluded.event_ts, "
               "created_ts = excluded.created_ts")
        rows = []
        for entity_key, values, timestamp, created_ts in data:
            names = sorted(values)
            blob = RepeatedValue(val=[values[n] for n in names]).SerializeToString()
            rows.append((serialize_entity_key(entity_key, entity_key_serialization_version=version),
                         ",".join(names), blob, _epoch(timestamp), _epoch(created_ts)))
        with conn:
            self._create(conn, config, table)  # a store made before this layout gets its tables on first write
            conn.executemany(sql, rows)
            # Feast's row-per-feature table of the same view, left by a store made before this layout: dropped
            # once this view's rows are written, so the store is never left empty between apply and materialize.
            conn.execute(f"DROP TABLE IF EXISTS "
                         f"{feast_private.quote_sqlite_id(feast_private.legacy_sqlite_table_name(config, table))}")
        if progress:
            progress(len(rows))

    def update_values(self, config, changes: Sequence[tuple[object, Callable]], keys: list[bytes],
                      event_ts: dt.datetime, created_ts: dt.datetime) -> int:
        """Change the stored rows of some entities in place, in several views at once: for each ``(view,
        change)`` of ``changes`` and each stored key of ``keys`` (Feast's serialized entity keys),
        ``change(key, names, values)`` edits the row's ``RepeatedValue`` (``names``: the features in row order)
        and says whether it changed anything; a changed row is encoded again, the others keep their bytes, and
        every row found gets the new times. One transaction for every view (one sync to disk), so a reader sees
        a client's rows all before or all after. Returns how many rows were found."""
        conn = feast_private.sqlite_connection(self, config)
        event_epoch, created_epoch = _epoch(event_ts), _epoch(created_ts)
        if conn.in_transaction:
            conn.commit()
        conn.execute("BEGIN IMMEDIATE")  # the rows read below are the ones rewritten (materialize may write too)
        found = 0
        try:
            for table, change in changes:
                name = self._table_name(config, table)
                blobs, stamps = [], []
                for start in range(0, len(keys), 500):
                    part = keys[start:start + 500]
                    for key, names, blob in conn.execute(
                            f"SELECT entity_key, feature_names, feature_values FROM {name} "
                            f"WHERE entity_key IN ({','.join('?' * len(part))})", part):
                        row = RepeatedValue.FromString(blob)
                        if change(key, _names(names), row):
                            blobs.append((row.SerializeToString(), event_epoch, created_epoch, key))
                        else:
                            stamps.append((event_epoch, created_epoch, key))
                conn.executemany(f"UPDATE {name} SET feature_values = ?, event_ts = ?, created_ts = ? "
                                 "WHERE entity_key = ?", blobs)
                conn.executemany(f"UPDATE {name} SET event_ts = ?, created_ts = ? WHERE entity_key = ?", stamps)
                found += len(blobs) + len(stamps)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        return found

    def read_views(self, config, requests: list[tuple[object, list[bytes], set[str] | frozenset[str] | None]],
                   conn=None) -> list[list]:
        """One query over several views; per view, Feast's (timestamp, {feature: value}) row for each key.
        ``conn`` is a caller's own connection (the API's readers keep one per thread)."""
        params = [key for _, keys, _ in requests for key in keys]
        found: list[dict] = [{} for _ in requests]
        wanted = [want if want is None or isinstance(want, frozenset) else frozenset(want)
                  for _, _, want in requests]
        conn = conn or feast_private.sqlite_connection(self, config)
        for position, key, names, blob, epoch in conn.execute(self._query(config, requests), params):
            values = RepeatedValue.FromString(blob).val
            found[position][key] = (epoch, {name: values[k] for k, name in _wanted_positions(names, wanted[position])})
        out = []
        for (_, keys, _), by_key in zip(requests, found, strict=True):
            rows = []
            for key in keys:
                entry = by_key.get(key)
                rows.append((None, None) if entry is None else
                            (None if entry[0] is None else dt.datetime.fromtimestamp(entry[0], tz=dt.UTC), entry[1]))
            out.append(rows)
        return out

    def _query(self, config, requests: list[tuple[object, list[bytes], set[str] | None]]) -> str:
        """The SQL of :meth:`read_views`, built once per shape (the views and how many keys each): the API asks
        the same shape for every client."""
        shape = (config.project, config.registry.enable_online_feature_view_versioning,
                 *((table.name, len(keys)) for table, keys, _ in requests))
        cache = self.__dict__.setdefault("_queries", {})
        sql = cache.get(shape)
        if sql is None:
            parts = []
            for position, (table, keys, _) in enumerate(requests):
                where = "entity_key = ?" if len(keys) == 1 else f"entity_key IN ({','.join('?' * len(keys))})"
                parts.append(f"SELECT {position}, entity_key, feature_names, feature_values, event_ts "
                             f"FROM {self._table_name(config, table)} WHERE {where}")
            sql = " UNION ALL ".join(parts)
            if len(cache) < 256:  # batches of many sizes: keep the common shapes, not every one
                cache[shape] = sql
        return sql

    def _serialize(self, config, entity_keys) -> list[bytes]:
        version = config.entity_key_serialization_version
        return [serialize_entity_key(k, entity_key_serialization_version=version) for k in entity_keys]

    def online_read(self, config, table, entity_keys, requested_features=None):
        keys = self._serialize(config, entity_keys)
        (rows,) = self.read_views(config, [(table, keys, set(requested_features) if requested_features else None)])
        return rows

    def _read_features_per_fv(self, config, grouped_refs, join_key_values, entity_name_to_join_key_map,
                              online_features_response, full_feature_names,
                              include_feature_view_version_metadata) -> None:
        """All views of a request in one query, then Feast's own response builder per view."""
        plans = []
        for table, requested_features in grouped_refs:
            values, idxs, output_len = feast_private.unique_entities(table, join_key_values,
                                                                     entity_name_to_join_key_map)
            keys = self._serialize(config, feast_private.entity_key_protos(values))
            plans.append((table, requested_features, keys, idxs, output_len))
        found = self.read_views(config, [(table, keys, set(features)) for table, features, keys, _, _ in plans])
        for (table, requested_features, _, idxs, output_len), rows in zip(plans, found, strict=True):
            feast_private.populate_response(
                requested_features, rows, idxs,
                online_features_response, full_feature_names, table, output_len,
                include_feature_view_version_metadata,
            )
