"""Writes fresh indicator values of single clients into the Feast online store (SQLite or Redis).

Kept apart from the readers on purpose: the decision path only reads. Only the values that changed are encoded and
written, with the family's new event time: Redis in two pipelined round trips per few hundred clients, with the hash
fields and encoding of Feast's own store (a client's views share one hash, so the fields given replace theirs and
the others stay; :meth:`OnlineWriter.update` still goes through Feast's ``online_write_batch``), the lean SQLite
store by replacing the changed values inside each stored row, every view in one transaction
(:meth:`LeanSqliteOnlineStore.update_values`); any other store gets its whole rows
rewritten (read first, merged, written with ``online_write_batch``). The stored layout is exactly the one
materialize writes. The SQLite file is switched to write-ahead logging, so that readers are not blocked by these
writes.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence

from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.types import Bool, Float64, Int64, String

from features.store import feast_internals as feast_private
from features.store.online_reader import (
    OnlineStoreUnavailable,
    fail_fast_redis,
    python_value,
    storage_key_encoder,
)
from features.store.sqlite_online import LeanSqliteOnlineStore

# Clients per Redis pipeline: Redis runs a pipeline's commands back to back, so the decisions' reads queue behind a
# pipeline of a whole round (1,000 clients: a few milliseconds); pipelines of this size let them in between.
REDIS_CLIENTS_PER_PIPELINE = 100
_SETTERS = {Float64: ("double_val", float), Int64: ("int64_val", int), Bool: ("bool_val", bool),
            String: ("string_val", str)}

Rows = Mapping[str, Mapping[str, Mapping[str, object]]]  # client → view → indicator → value


def _proto(setter: tuple[str, type], value: object) -> ValueProto:
    if value is None:
        return ValueProto()
    attribute, convert = setter
    return ValueProto(**{attribute: convert(value)})


@functools.lru_cache(maxsize=256)
def _positions(names: tuple[str, ...]) -> dict[str, int]:
    """Each indicator's position in a stored row holding ``names`` (every row of a view holds the same)."""
    return {name: k for k, name in enumerate(names)}


class OnlineWriter:
    """Reads client rows of chosen feature views and writes the values of some of their indicators."""

    def __init__(self, store, view_names: list[str]) -> None:
        self.store = store
        self.config = store.config
        self.online_store = feast_private.online_store_of(store)
        self.views = {name: store.get_feature_view(name) for name in view_names}
        self.types = {name: {f.name: f.dtype for f in view.features} for name, view in self.views.items()}
        # Per view and indicator: the protobuf field and the Python conversion (looked up once, not per value).
        self._setters = {name: {n: _SETTERS[t] for n, t in types.items()} for name, types in self.types.items()}
        self.join_key = next(iter(self.views.values())).entity_columns[0].name
        self.lean = isinstance(self.online_store, LeanSqliteOnlineStore)
        self.redis = type(self.online_store).__name__ == "RedisOnlineStore"
        if self.lean:
            self._storage_key = storage_key_encoder(self.config, self.join_key)
            # Write-ahead logging: decisions keep reading while events are written (in SQLite's default rollback
            # journal a write blocks every reader until it commits). The mode is kept in the file.
            feast_private.sqlite_connection(self.online_store, self.config).execute("PRAGMA journal_mode = WAL")
        if self.redis:
            # Writes happen under the event journal's lock: a stopped Redis must fail them at once, not after
            # redis-py's retries with backoffs (the events stay in the journal and are applied later).
            fail_fast_redis(self.online_store, self.config, 1.0)

    def _key(self, client_id: str) -> EntityKeyProto:
        return EntityKeyProto(join_keys=[self.join_key], entity_values=[ValueProto(string_val=client_id)])

    def read(self, client_ids: list[str], indicators: Mapping[str, Sequence[str]] | None = None
             ) -> dict[str, dict[str, dict[str, object]]]:
        """Per client with a row in every view: view → the current value of each indicator (every indicator of
        the view, or those ``indicators`` names for it)."""
        keys = [self._key(c) for c in client_ids]
        found: dict[str, dict[str, dict[str, object]]] = {}
        try:
            for name, view in self.views.items():
                wanted = list(indicators[name]) if indicators is not None else list(self.types[name])
                rows = self.online_store.online_read(self.config, view, keys, wanted)
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

    def _data(self, name: str, rows: Rows, created: dt.datetime, stamp: dt.datetime) -> list[tuple]:
        setters = self._setters[name]
        return [(self._key(client_id), {n: _proto(setters[n], v) for n, v in by_view[name].items()}, stamp, created)
                for client_id, by_view in rows.items() if name in by_view]

    def write(self, rows: Rows, stamp: dt.datetime) -> None:
        """Write ``client → view → values`` (each a view's whole row) with event time ``stamp``."""
        created = dt.datetime.now(dt.UTC)
        try:
            for name, view in self.views.items():
                data = self._data(name, rows, created, stamp)
                if data:
                    self.online_store.online_write_batch(self.config, view, data, None)
        except Exception as e:
            raise OnlineStoreUnavailable(f"the online store failed: {e}") from e

    def exchange(self, rows: Rows, stamp: dt.datetime) -> dict[str, dict[str, dict[str, object]]]:
        """Write ``client → view → values`` (some indicators of every view) where they differ from the stored
        values, move each view's event time to ``stamp``, and return the values stored before (per client with a
        row in every view; the other clients are left alone)."""
        if self.redis and rows:
            return self._exchange_redis(rows, stamp)
        if not self.lean:
            before = self.read(list(rows), {name: list(next(iter(rows.values()))[name]) for name in self.views}
                               ) if rows else {}
            self.update({c: {name: {n: v for n, v in values.items() if before[c][name].get(n) != v
                                    or n not in before[c][name]} for name, values in by_view.items()}
                         for c, by_view in rows.items() if c in before}, stamp)
            return before
        created = dt.datetime.now(dt.UTC)
        by_key = {self._storage_key(c): c for c in rows}
        keys = list(by_key)
        before: dict[str, dict[str, dict[str, object]]] = {}
        incomplete: set[str] = set()

        def changer(name: str):
            setters = self._setters[name]

            def change(key: bytes, names: tuple[str, ...], row) -> bool:
                client_id = by_key[key]
                position = _positions(names)
                values = row.val
                old: dict[str, object] = {}
                changed = False
                for n, v in rows[client_id][name].items():
                    k = position.get(n)
                    if k is None:  # a row stored before the view had this indicator: rewritten whole below
                        incomplete.add(client_id)
                        continue
                    stored = values[k]
                    current = old[n] = python_value(stored)
                    if current != v:
                        changed = True
                        if v is None:
                            stored.Clear()
                        else:
                            attribute, convert = setters[n]
                            setattr(stored, attribute, convert(v))
                before.setdefault(client_id, {})[name] = old
                return changed

            return change

        try:
            self.online_store.update_values(self.config, [(view, changer(name)) for name, view in self.views.items()],
                                            keys, stamp, created)
        except Exception as e:
            raise OnlineStoreUnavailable(f"the online store failed: {e}") from e
        if incomplete:
            self.update({c: rows[c] for c in incomplete}, stamp)
        return {c: views for c, views in before.items() if len(views) == len(self.views)}

    def _redis_fields(self, name: str, names: tuple[str, ...]) -> tuple[list[str], list[str | bytes]]:
        """The hash fields of some indicators of a view, its time field last (built once per view)."""
        cache = self.__dict__.setdefault("_fields", {})
        if (name, names) not in cache:
            cache[(name, names)] = feast_private.redis_view_fields(self.online_store, self.views[name], list(names))
        return cache[(name, names)]

    def _exchange_redis(self, rows: Rows, stamp: dt.datetime) -> dict[str, dict[str, dict[str, object]]]:
        """:meth:`exchange` on Redis in two round trips per ``REDIS_CLIENTS_PER_PIPELINE`` clients: one HMGET per
        client for the given indicators and each view's time (the views share the client's hash), then one HSET
        per client with the changed values and every view's new time, pipelined. A view whose stored time is not
        older than ``stamp`` is left alone, as Feast's own write does."""
        from google.protobuf.timestamp_pb2 import Timestamp

        store, config = self.online_store, self.config
        clients = list(rows)
        first = rows[clients[0]]
        layout = []  # per view: (name, indicator names, their fields with the time field last, span in a reply)
        start = 0
        for name in self.views:
            names = tuple(first[name])
            wanted, fields = self._redis_fields(name, names)
            layout.append((name, names, wanted, fields, start, start + len(fields)))
            start += len(fields)
        every_field = [f for *_, fields, _, _ in layout for f in fields]
        time_field = Timestamp()
        time_field.FromDatetime(stamp.astimezone(dt.UTC))
        stamp_bytes = time_field.SerializeToString()
        new_time = stamp.timestamp()
        ttl = getattr(config.online_store, "key_ttl_seconds", None)
        before: dict[str, dict[str, dict[str, object]]] = {}
        try:
            client = feast_private.redis_client(store, config)
            for first_of_part in range(0, len(clients), REDIS_CLIENTS_PER_PIPELINE):
                part = clients[first_of_part:first_of_part + REDIS_CLIENTS_PER_PIPELINE]
                keys = feast_private.redis_entity_keys(store, config, [self._key(c) for c in part])
                replies = feast_private.redis_read_fields(store, config, [(key, every_field) for key in keys])
                with client.pipeline(transaction=False) as pipe:
                    for client_id, key, reply in zip(part, keys, replies, strict=True):
                        if not any(reply):  # no hash: a client the store does not hold
                            continue
                        mapping, before[client_id] = self._redis_change(reply, layout, rows[client_id], stamp_bytes,
                                                                        new_time)
                        if mapping:
                            pipe.hset(key, mapping=mapping)
                            if ttl:
                                pipe.expire(name=key, time=ttl)
                    pipe.execute()
        except Exception as e:
            raise OnlineStoreUnavailable(f"the online store failed: {e}") from e
        return before

    def _redis_change(self, reply: list, layout: list, new_values: dict[str, dict[str, object]], stamp_bytes: bytes,
                      new_time: float) -> tuple[dict[str | bytes, bytes], dict[str, dict[str, object]]]:
        """(the hash fields to write, the stored values by view) of one client from its HMGET ``reply``: the
        values that differ, and each view's new time, for every view stored before ``new_time``."""
        mapping: dict[str | bytes, bytes] = {}
        old_views: dict[str, dict[str, object]] = {}
        for name, names, wanted, fields, a, b in layout:
            stored_time, stored = feast_private.redis_decode(self.online_store, reply[a:b], name, list(wanted))
            old = old_views[name] = {n: python_value(stored[n]) if stored else None for n in names}
            if stored_time is not None and stored_time.timestamp() >= new_time:
                continue
            setters, new = self._setters[name], new_values[name]
            for n, field in zip(names, fields, strict=False):
                if old[n] != new[n] or stored is None:
                    mapping[field] = _proto(setters[n], new[n]).SerializeToString()
            mapping[fields[-1]] = stamp_bytes
        return mapping, old_views

    def update(self, rows: Rows, stamp: dt.datetime) -> None:
        """Replace the given values of ``client → view → values`` (some indicators of each view; an empty view
        only moves its time) and keep the other indicators; every given view of a client gets event time
        ``stamp``. Clients without a row in the store are left alone."""
        if not self.redis:
            current = self.read(list(rows))
            self.write({c: {name: {**current[c][name], **values} for name, values in by_view.items()}
                        for c, by_view in rows.items() if c in current}, stamp)
            return
        created = dt.datetime.now(dt.UTC)
        try:
            for name, view in self.views.items():
                data = self._data(name, rows, created, stamp)
                if not data:
                    continue
                self.online_store.online_write_batch(self.config, view, data, None)
        except Exception as e:
            raise OnlineStoreUnavailable(f"the online store failed: {e}") from e
