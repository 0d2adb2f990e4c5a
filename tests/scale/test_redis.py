"""Redis as the online store: the same indicator values and the same decisions as with SQLite."""

from __future__ import annotations

import pytest

from config import Settings
from features.store.feature_store import latest_frame, materialize_latest, open_store
from features.store.online_reader import OnlineReader, OnlineStoreUnavailable
from model_registry.registry import Registry
from rules.engine import build
from rules.model import load_ruleset
from rules.vocabulary import load_vocabulary
from service.decisions import Served, decide
from service.rule_inputs import indicator_references
from service.scoring import Models


def test_redis_serves_the_same_decisions_as_sqlite(model_home: Settings, redis_url: str) -> None:
    materialize_latest(model_home.features_dir, redis_url)
    models = Models.load(Registry(model_home.tracking_uri, model_home.mlflow_artifacts_dir))
    vocabulary = load_vocabulary()
    refs = list(dict.fromkeys([*models.references, *indicator_references(vocabulary)]))
    ruleset = build(load_ruleset())
    # Generous read bounds: on a busy test machine a slow read would make one side's decision degraded.
    sqlite = Served(models, ruleset, OnlineReader(open_store(model_home.features_dir), refs, timeout_s=5), vocabulary)
    redis = Served(models, ruleset, OnlineReader(open_store(model_home.features_dir, redis_url), refs, timeout_s=5),
                   vocabulary)
    clients = list(latest_frame(model_home.features_dir, ["client_category:total_assets"]).index)[:300]
    for client in clients:
        assert redis.reader.read(client) == sqlite.reader.read(client)
        from_sqlite, _, _ = decide(sqlite, client, "Asia/Shanghai")
        from_redis, _, _ = decide(redis, client, "Asia/Shanghai")
        assert from_redis == from_sqlite
    assert redis.reader.read("C9999999") is None


def test_an_unreachable_redis_is_reported_as_unavailable(model_home: Settings) -> None:
    reader = OnlineReader(open_store(model_home.features_dir, "redis://127.0.0.1:1/0?socket_connect_timeout=0.2"),
                          ["client_category:total_assets"])
    with pytest.raises(OnlineStoreUnavailable):
        reader.read("C0000001")
