"""The one door to Feast's private functions: everything the online store and the API's reader need from Feast
that its public API does not offer (or offers too slowly for one decision).

Feast may change an underscore-prefixed function in any release. Every such use goes through this module, and
``tests/features/test_feast_internals.py`` pins each one: its signature and a fingerprint of its source for the
installed Feast version. When Feast is upgraded and one of them changed, that test fails and names it; check the
new code, adapt the wrapper here, then update the recorded fingerprint (``PINNED`` below).

Public API is used where it is fast enough: :func:`online_store_of` builds the provider with Feast's public
``get_provider``, table names come from the public ``compute_table_id``, and SQLite identifiers are quoted here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from feast.infra.online_stores.helpers import compute_table_id
from feast.infra.provider import get_provider
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto

FEAST_VERSION = "0.67"  # the version whose private functions are wrapped below (constraints.txt pins it)

# What each wrapper relies on: "module:qualified name" → (parameter names, sha256 of the source, first 16 hex).
# Checked by tests/features/test_feast_internals.py against the installed Feast.
PINNED: dict[str, tuple[tuple[str, ...], str]] = {
    "feast.infra.online_stores.sqlite:SqliteOnlineStore._get_db_path":
        (('config',), "77c8de41f6e2b7c8"),
    "feast.infra.online_stores.sqlite:SqliteOnlineStore._get_conn":
        (('self', 'config'), "d12b367dce4b6888"),
    "feast.infra.online_stores.redis:RedisOnlineStore._get_client":
        (('self', 'online_store_config'), "2f1f47fd661dd531"),
    "feast.infra.online_stores.redis:RedisOnlineStore._generate_redis_keys_for_entities":
        (('self', 'config', 'entity_keys'), "f36b688ef1d2dfe2"),
    "feast.infra.online_stores.redis:RedisOnlineStore._generate_hset_keys_for_features":
        (('self', 'feature_view', 'requested_features', 'fv_name_override'), "c0c3cf8e416a3b42"),
    "feast.infra.online_stores.redis:RedisOnlineStore._read_hash_fields":
        (('self', 'config', 'commands'), "6b491db3f00ccba4"),
    "feast.infra.online_stores.redis:RedisOnlineStore._get_features_for_entity":
        (('self', 'values', 'feature_view', 'requested_features'), "5b1c848bea70dce8"),
    "feast.infra.online_stores.online_store:OnlineStore._read_features_per_fv":
        (('self', 'config', 'grouped_refs', 'join_key_values', 'entity_name_to_join_key_map',
          'online_features_response', 'full_feature_names', 'include_feature_view_version_metadata'),
         "1786a199d61dfad0"),
    "feast.utils:_get_unique_entities":
        (('table', 'join_key_values', 'entity_name_to_join_key_map'), "07e1c2e5f9970fba"),
    "feast.utils:_get_entity_key_protos":
        (('entity_rows',), "dd74b4a671ad055b"),
    "feast.utils:_populate_response_from_feature_data":
        (('requested_features', 'read_rows', 'indexes', 'online_features_response', 'full_feature_names', 'table',
          'output_len', 'include_feature_view_version_metadata'), "aac08634c9ce113d"),
    "feast.infra.online_stores.helpers:compute_table_id":
        (('project', 'table', 'enable_versioning'), "5b7813c38cdac515"),
    "feast.infra.provider:get_provider":
        (('config',), "ff6075a65e730f97"),
}


def online_store_of(store):
    """The online store object of a ``FeatureStore`` (a new provider from its config, through public API)."""
    return get_provider(store.config).online_store


def sqlite_table_name(config, table) -> str:
    """The name Feast's SQLite store gives a feature view's table (project and view, versioned or not)."""
    return compute_table_id(config.project, table, config.registry.enable_online_feature_view_versioning)


def legacy_sqlite_table_name(config, table) -> str:
    """The row-per-feature table Feast's own SQLite store keeps for a view (unversioned name)."""
    return compute_table_id(config.project, table, False)


def quote_sqlite_id(identifier: str) -> str:
    """A quoted SQLite identifier (standard SQL: double quotes, embedded quotes doubled)."""
    return '"' + identifier.replace('"', '""') + '"'


def sqlite_db_path(config) -> Path:
    """The SQLite online store's file, resolved as Feast resolves it (relative to the repository path)."""
    from feast.infra.online_stores.sqlite import SqliteOnlineStore

    return Path(SqliteOnlineStore._get_db_path(config))


def sqlite_connection(online_store, config):
    """Feast's SQLite store's own (shared) connection, created on first use."""
    return online_store._get_conn(config)


# Redis: one client's views live in one hash; these build its key and fields, read them, and decode them exactly as
# Feast's Redis store does.

def redis_client(online_store, config):
    """The Redis store's client (created on first use)."""
    return online_store._get_client(config.online_store)


def redis_entity_keys(online_store, config, entity_keys: Sequence[EntityKeyProto]) -> list[bytes]:
    """The Redis keys of entities (their hashes hold every view's fields)."""
    return online_store._generate_redis_keys_for_entities(config, list(entity_keys))


def redis_view_fields(online_store, view, names: Sequence[str]) -> tuple[list[str], list[str | bytes]]:
    """The hash fields of a view's features (and its timestamp field): (feature names in order, fields)."""
    return online_store._generate_hset_keys_for_features(view, list(names))


def redis_read_fields(online_store, config, commands: Sequence[tuple[bytes, list[str | bytes]]]) -> list[list]:
    """One HMGET reply per (key, fields), in order, pipelined."""
    return online_store._read_hash_fields(config, list(commands))


def redis_decode(online_store, reply: Sequence, view_name: str, names: list[str]
                 ) -> tuple[datetime | None, dict[str, ValueProto] | None]:
    """Feast's (timestamp, {feature: value}) from one view's slice of an HMGET reply."""
    return online_store._get_features_for_entity(reply, view_name, names)


# Feast's response building, for the lean SQLite store's override of the online read (``get_online_features``).

READ_FEATURES_HOOK = "_read_features_per_fv"  # the OnlineStore method the lean store overrides


def unique_entities(table, join_key_values, entity_name_to_join_key_map):
    """(unique entity rows, their positions in the request, request length), as Feast groups a request."""
    from feast import utils

    return utils._get_unique_entities(table, join_key_values, entity_name_to_join_key_map)


def entity_key_protos(entity_rows) -> list[EntityKeyProto]:
    """EntityKey protos of entity rows ({join key: value})."""
    from feast import utils

    return utils._get_entity_key_protos(entity_rows)


def populate_response(requested_features, rows, indexes, response, full_feature_names, table, output_len,
                      include_feature_view_version_metadata) -> None:
    """Fill Feast's online response from one view's rows, as its own stores do."""
    from feast import utils

    utils._populate_response_from_feature_data(requested_features, rows, indexes, response, full_feature_names,
                                               table, output_len, include_feature_view_version_metadata)
