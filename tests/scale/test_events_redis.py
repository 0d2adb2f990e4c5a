"""Client events on the Redis online store: the same events leave the same values in Redis as in SQLite (the Redis
store is written through its own two pipelined round trips, the lean SQLite store by editing its rows in place)."""

from __future__ import annotations

import shutil
from pathlib import Path

from config import Settings
from features.events.apply import FRESH_VIEWS, EventApplier
from features.events.contract import parse_event
from features.events.fresh import FRESH_INDICATORS
from features.events.journal import Journal
from features.store.feature_store import apply, latest_as_of, materialize_latest, open_store
from features.store.online_writer import OnlineWriter
from tests.conftest import build_event_world
from tests.features.events.test_online_offline import random_events
from tests.scale.conftest import OwnRedis


def _apply_all(settings: Settings, documents: list[dict], clients: list[str]) -> tuple[dict, dict]:
    """Apply the events in batches; the touched clients' rows (every indicator of the fresh views) before and
    after."""
    journal = Journal(settings.events_dir)
    writer = OnlineWriter(open_store(settings.features_dir, settings.online_store), FRESH_VIEWS)
    applier = EventApplier(journal, settings.raw_dir, writer, latest_as_of(settings.features_dir))
    before = writer.read(clients)
    for start in range(0, len(documents), 300):
        journal.append([parse_event(d) for d in documents[start:start + 300]], "test")
        while applier.apply_once(limit=250) is not None:
            pass
    assert journal.backlog() == 0
    return before, writer.read(clients)


def test_events_leave_the_same_values_in_redis_as_in_sqlite(small_world: Path, own_redis: OwnRedis,
                                                              tmp_path: Path) -> None:
    on_sqlite = build_event_world(small_world, tmp_path / "sqlite")
    on_redis = Settings(home=tmp_path / "redis", online_store=own_redis.url)
    shutil.copytree(on_sqlite.raw_dir, on_redis.raw_dir)
    shutil.copytree(on_sqlite.features_dir, on_redis.features_dir)
    apply(on_redis.features_dir, own_redis.url)
    materialize_latest(on_redis.features_dir, own_redis.url)
    documents = random_events(on_sqlite, count=1_500, clients=40, seed=3)
    touched = sorted({d["client_id"] for d in documents})

    sqlite_before, sqlite_after = _apply_all(on_sqlite, documents, touched)
    redis_before, redis_after = _apply_all(on_redis, documents, touched)

    assert set(sqlite_after) == set(redis_after) == set(touched)
    as_text = {c: {v: {n: repr(x) for n, x in values.items()} for v, values in views.items()}  # repr: NaN == NaN
               for c, views in redis_before.items()}
    assert as_text == {c: {v: {n: repr(x) for n, x in values.items()} for v, values in views.items()}
                       for c, views in sqlite_before.items()}, "both stores start from the same batch values"
    changed = 0
    for client in touched:
        for view in FRESH_VIEWS:
            assert {n: repr(x) for n, x in redis_after[client][view].items()} == \
                {n: repr(x) for n, x in sqlite_after[client][view].items()}, (client, view)
            changed += sum(redis_after[client][view][n] != redis_before[client][view][n]
                           for n in FRESH_INDICATORS[view])
    assert changed > len(touched)  # the events moved many indicators, in both stores alike
