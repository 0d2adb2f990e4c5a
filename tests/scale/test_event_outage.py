"""Client events while the online store (a Redis server of the test's own) is stopped: the intake keeps answering
202, `/readyz` reports the backlog, and once Redis is back every event is applied, once."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import Settings
from features.events.apply import FRESH_VIEWS
from features.events.journal import Journal
from features.store.feature_store import latest_as_of, latest_frame, materialize_latest, open_store
from features.store.online_writer import OnlineWriter
from service.db import make_engine
from service.keys import Role, create_key
from tests._server import crm_serve, get, post, wait_until
from tests.scale.conftest import OwnRedis
from tests.service.conftest import copy_home


def test_events_accepted_while_redis_is_down_are_applied_once_when_it_returns(
        model_home: Settings, own_redis: OwnRedis, tmp_path: Path) -> None:
    online = f"{own_redis.url}?socket_timeout=1&socket_connect_timeout=1"
    settings = copy_home(model_home, tmp_path / "home", online_store=online)
    materialize_latest(settings.features_dir, online)
    _, key = create_key(make_engine(settings.service_database_url), Role.INGEST, "outage-test")
    clients = list(latest_frame(settings.features_dir, ["client_category:total_assets"]).index[:10])
    day = latest_as_of(settings.features_dir)
    writer = OnlineWriter(open_store(settings.features_dir, online), FRESH_VIEWS)
    baseline = {c: v["client_flow"]["inflow_30d"] for c, v in writer.read(clients).items()}
    sent: list[dict] = []

    def send(count: int) -> list[tuple[int, dict]]:
        answers = []
        for start in range(0, count, 100):
            batch = [{"event_id": f"out-{len(sent) + k}", "kind": "cash_transfer",
                      "transfer_id": 5_000_000_000 + len(sent) + k, "client_id": clients[(len(sent) + k) % 10],
                      "transfer_date": day.isoformat(), "direction": "in", "amount": 10.0 + len(sent) + k}
                     for k in range(min(100, count - start))]
            answers.append(post(f"{server.base}/v1/events", {"events": batch}, key))
            sent.extend(batch)
        return answers

    env = {"CRM_ONLINE_STORE": online, "CRM_ONLINE_TIMEOUT_MS": "1000", "CRM_EVENTS_APPLY_INTERVAL_MS": "20"}
    with crm_serve(settings.home, env, workers=2, log=tmp_path / "serve.log") as server:
        assert {status for status, _ in send(200)} == {202}
        wait_until(lambda: get(f"{server.base}/readyz")[1].get("event_backlog") == 0, "the first events applied")
        own_redis.stop()
        answers = send(300)
        assert {status for status, _ in answers} == {202}, answers
        wait_until(lambda: get(f"{server.base}/readyz")[1].get("event_backlog") == 300, "the backlog reported")
        # The applier notes the failure once its own write attempt has timed out (1 s here).
        wait_until(lambda: get(f"{server.base}/readyz")[1].get("events_applying") is False, "the outage reported")
        status, ready = get(f"{server.base}/readyz")
        assert status == 503 and ready["events_applying"] is False and ready["event_backlog"] == 300
        own_redis.start()
        wait_until(lambda: get(f"{server.base}/readyz")[1].get("event_backlog") == 0, "the backlog applied")
    assert len(Journal(settings.events_dir).all_rows()) == 500
    after = writer.read(clients)
    for client in clients:
        expected = baseline[client] + sum(e["amount"] for e in sent if e["client_id"] == client)
        assert after[client]["client_flow"]["inflow_30d"] == pytest.approx(expected)
