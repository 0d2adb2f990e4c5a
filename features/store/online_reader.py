"""One client's current indicators from the Feast online store, for the decision API.

The reader is prepared once for a fixed list of ``view:indicator`` references (every model input and rule term)
and then reads one client with Feast's online store itself: the lean SQLite store answers all views in one
query, any other store (Redis) view by view through Feast's ``online_read``. It skips Feast's response building,
which costs more than the read, and converts Feast's values to plain Python values.

Reads are bounded: the SQLite file must still be there (a store taken away is noticed on the next read, not
after minutes of stale answers), and a query running past ``timeout_s`` is interrupted. Both raise
:class:`OnlineStoreUnavailable`, which the API turns into a degraded, rules-only decision.

For SQLite each thread reads through its own read-only connection: Feast's store shares one connection, and a
shared connection with a Python progress handler deadlocks between the GIL and SQLite's connection mutex when
two threads read at once.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import threading
import time
from collections.abc import Callable

from feast.infra.key_encoding_utils import serialize_entity_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto

from features.store import feast_internals as feast_private
from features.store.sqlite_online import LeanSqliteOnlineStore


class OnlineStoreUnavailable(Exception):
    """The online store cannot answer now (gone, locked, failing or too slow)."""

    code = "online_store_unavailable"


def python_value(value: ValueProto) -> object:
    kind = value.WhichOneof("val")
    if kind is None or kind == "null_val":
        return None
    return getattr(value, kind)


def fail_fast_redis(online_store, config, timeout_s: float) -> None:
    """Make the Redis store's client fail at once: redis-py retries a failed command three times with backoffs of
    up to seconds (a stopped Redis would hold every caller for seconds), and without socket timeouts in the URL a
    hung Redis would hold a caller for ever (bounded here by ``timeout_s`` unless the URL sets its own)."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = feast_private.redis_client(online_store, config)
    client.set_retry(Retry(NoBackoff(), 0))
    kwargs = client.connection_pool.connection_kwargs
    for name in ("socket_timeout", "socket_connect_timeout"):
        if kwargs.get(name) is None:
            kwargs[name] = timeout_s


def storage_key_encoder(config, join_key: str) -> Callable[[str], bytes]:
    """Feast's stored key of a client id. Feast builds a proto and packs it field by field per call; for one string
    join key the bytes are a constant prefix, the id's length and the id, so the prefix is taken once from Feast's
    own serialisation here and checked on a few ids (Feast's function is kept if any differs)."""
    version = config.entity_key_serialization_version

    def by_feast(client_id: str) -> bytes:
        key = EntityKeyProto(join_keys=[join_key], entity_values=[ValueProto(string_val=client_id)])
        return serialize_entity_key(key, entity_key_serialization_version=version)

    probe = "C0000001"
    prefix = by_feast(probe)[:-(4 + len(probe.encode()))]

    def by_prefix(client_id: str) -> bytes:
        encoded = client_id.encode()
        return prefix + len(encoded).to_bytes(4, "little") + encoded

    probes = ("C0000001", "", "x", "客户-0042", "K" * 70)
    return by_prefix if all(by_prefix(p) == by_feast(p) for p in probes) else by_feast


class OnlineReader:
    """Reads fixed indicators of one client from the online store of a Feast ``FeatureStore``."""

    def __init__(self, store, references: list[str], timeout_s: float = 0.05) -> None:
        self.store = store
        self.config = store.config
        self.online_store = feast_private.online_store_of(store)
        self.timeout_s = timeout_s
        by_view: dict[str, list[str]] = {}
        for ref in references:
            view, name = ref.split(":", 1)
            if name not in by_view.setdefault(view, []):
                by_view[view].append(name)
        self.views = [(store.get_feature_view(view), frozenset(names)) for view, names in by_view.items()]
        self.join_key = self.views[0][0].entity_columns[0].name
        self.lean = isinstance(self.online_store, LeanSqliteOnlineStore)
        self.redis = type(self.online_store).__name__ == "RedisOnlineStore"
        if self.redis:  # all views of a client live in one Redis hash: one HMGET reads them all
            self._redis_fields = [feast_private.redis_view_fields(self.online_store, v, sorted(w))
                                  for v, w in self.views]
            self._redis_all_fields = [f for _, fields in self._redis_fields for f in fields]
            # The reader has its own bound and degrades instead of waiting for redis-py's retries.
            fail_fast_redis(self.online_store, self.config, timeout_s)
            ends = list(itertools.accumulate(len(fields) for _, fields in self._redis_fields))
            self._redis_spans = list(zip([0, *ends[:-1]], ends, strict=True))
        self.path = feast_private.sqlite_db_path(self.config) if self.lean else None
        self._storage_key = self._storage_key_encoder()
        self._local = threading.local()  # per thread: connection, file identity, deadline

    def _entity_key(self, client_id: str) -> EntityKeyProto:
        return EntityKeyProto(join_keys=[self.join_key], entity_values=[ValueProto(string_val=client_id)])

    def _storage_key_encoder(self):
        return storage_key_encoder(self.config, self.join_key)

    def _interrupt(self) -> int:
        return 1 if time.monotonic() > self._local.deadline else 0

    def _connection(self) -> sqlite3.Connection:
        """This thread's read-only connection, reopened when the store file was replaced."""
        local = self._local
        try:
            stat = os.stat(self.path)  # type: ignore[arg-type]
        except FileNotFoundError:
            raise OnlineStoreUnavailable(f"the online store {self.path} is not there; run `crm features materialize`"
                                         ) from None
        identity = (stat.st_dev, stat.st_ino)
        conn = getattr(local, "conn", None)
        if conn is None or local.identity != identity:
            if conn is not None:
                conn.close()
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=self.timeout_s,
                                   check_same_thread=False)
            # No memory map: every pool thread has its own connection, and each map of the store would count
            # again in the worker's resident memory; reads through the OS page cache measured as fast.
            conn.execute("PRAGMA mmap_size = 0")
            conn.set_progress_handler(self._interrupt, 2_000)
            local.conn, local.identity = conn, identity
        return conn

    def read(self, client_id: str) -> tuple[dict[str, object], float | None] | None:
        """The client's indicator values and the newest event time (epoch seconds), or None when the store has
        no row for the client."""
        return self.read_many([client_id])[0]

    def read_many(self, client_ids: list[str], with_times: bool = False) -> list[tuple | None]:
        """:meth:`read` for several clients in one round trip; the bound grows by 0.5 ms a client. With
        ``with_times`` each found client also gets each view's event time (epoch seconds): the time that family's
        values are as of (a month-end from the batch, or the moment client events were last applied)."""
        budget = self.timeout_s + 0.0005 * (len(client_ids) - 1)
        deadline = self._local.deadline = time.monotonic() + budget
        try:
            if self.lean:
                conn = self._connection()
                keys = [self._storage_key(c) for c in client_ids]
                by_view = self.online_store.read_views(self.config, [(v, keys, w) for v, w in self.views], conn)
            elif self.redis:
                store = self.online_store
                redis_keys = feast_private.redis_entity_keys(store, self.config,
                                                             [self._entity_key(c) for c in client_ids])
                # One HMGET per client for every view's fields (they share the client's hash), split per view.
                replies = feast_private.redis_read_fields(store, self.config,
                                                          [(key, self._redis_all_fields) for key in redis_keys])
                by_view = [[feast_private.redis_decode(store, reply[a:b], view.name, list(names)) for reply in replies]
                           for (view, _), (names, _), (a, b) in zip(self.views, self._redis_fields, self._redis_spans,
                                                                    strict=True)]
            else:
                entity_keys = [self._entity_key(c) for c in client_ids]
                by_view = [self.online_store.online_read(self.config, v, entity_keys, list(w)) for v, w in self.views]
        except OnlineStoreUnavailable:
            raise
        except (sqlite3.Error, OSError, ConnectionError, TimeoutError) as e:
            raise OnlineStoreUnavailable(f"the online store failed: {e}") from e
        except Exception as e:  # client libraries (redis) raise their own error types
            if type(e).__module__.split(".")[0] in ("redis", "feast"):
                raise OnlineStoreUnavailable(f"the online store failed: {e}") from e
            raise
        if time.monotonic() > deadline:
            raise OnlineStoreUnavailable(f"the online store took longer than {budget * 1000:.0f} ms")
        return [self._values([rows[k] for rows in by_view], with_times) for k in range(len(client_ids))]

    def _values(self, rows: list, with_times: bool = False) -> tuple | None:
        """One client's values from its (timestamp, features) row of each view (and, asked, each view's time)."""
        values: dict[str, object] = {}
        newest = None
        times: dict[str, float | None] = {}
        for (view, wanted), (ts, features) in zip(self.views, rows, strict=True):
            if with_times:
                times[view.name] = ts.timestamp() if ts is not None and features is not None else None
            if features is None:
                continue
            for name, value in features.items():
                if name in wanted:
                    values[name] = python_value(value)
            if ts is not None:
                stamp = ts.timestamp()
                newest = stamp if newest is None or stamp > newest else newest
        if all(v is None for v in values.values()):  # Redis answers an unknown key with empty fields
            return None
        return (values, newest, times) if with_times else (values, newest)
