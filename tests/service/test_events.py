"""Client events through the API: every status code of the intake, the fresh decision, the alert on the stream,
and intake while the online store is away."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from config import Settings
from features.events.journal import Journal
from features.raw.store import read_table
from features.store.feature_store import latest_as_of, latest_frame
from service.app import create_app
from service.db import make_engine
from service.keys import Role, create_key
from service.scope import Scope
from tests._server import crm_serve, post
from tests.service.conftest import copy_home


@pytest.fixture(scope="module")
def world(model_home: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return copy_home(model_home, tmp_path_factory.mktemp("events") / "home")


@pytest.fixture(scope="module")
def keys(world: Settings) -> dict[Role, str]:
    engine = make_engine(world.service_database_url)
    made = {role: create_key(engine, role, f"events-{role.value}")[1]
            for role in (Role.INGEST, Role.FRONT_OFFICE, Role.COMPLIANCE)}
    engine.dispose()
    return made


@pytest.fixture(scope="module")
def client(world: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(world)) as c:
        yield c


def auth(keys: dict[Role, str], role: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys[role]}"}


def transfer(event_id: str, client_id: str, day: dt.date, amount: float = 1_000.0, direction: str = "in",
             transfer_id: int = 2_000_000_000) -> dict:
    return {"event_id": event_id, "kind": "cash_transfer", "transfer_id": transfer_id, "client_id": client_id,
            "transfer_date": day.isoformat(), "direction": direction, "amount": amount}


def open_clients(world: Settings) -> list[str]:
    return list(latest_frame(world.features_dir, ["client_category:total_assets"]).index)


def wait_for(predicate, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "the condition never came true"
        time.sleep(0.02)


def test_every_status_code_of_the_intake(client: TestClient, world: Settings, keys: dict[Role, str]) -> None:
    someone = open_clients(world)[0]
    day = latest_as_of(world.features_dir)
    ok = client.post("/v1/events", json={"events": [transfer("s-1", someone, day)]}, headers=auth(keys, Role.INGEST))
    assert ok.status_code == 202 and ok.json()["accepted"] == 1 and ok.json()["duplicates"] == []
    again = client.post("/v1/events", json={"events": [transfer("s-1", someone, day)]},
                        headers=auth(keys, Role.INGEST))
    assert again.status_code == 202 and again.json()["accepted"] == 0 and again.json()["duplicates"] == ["s-1"]
    assert client.post("/v1/events", json={"events": [transfer("s-2", someone, day)]}).status_code == 401
    refused = client.post("/v1/events", json={"events": [transfer("s-2", someone, day)]},
                          headers=auth(keys, Role.FRONT_OFFICE))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    bad = client.post("/v1/events", json={"events": [transfer("s-3", someone, day, amount=-5)]},
                      headers=auth(keys, Role.INGEST))
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "request_invalid"
    assert "events.0.cash_transfer.amount" in bad.json()["error"]["message"]
    lots = {"event_id": "s-4", "kind": "trade", "trade_id": 7, "client_id": someone, "security_id": "600000",
            "trade_date": day.isoformat(), "side": "buy", "quantity": 150, "price": 10.0, "amount": 1500.0,
            "commission": 5.0, "stamp_duty": 0.0}
    odd = client.post("/v1/events", json={"events": [lots]}, headers=auth(keys, Role.INGEST))
    assert odd.status_code == 422 and "events.0.trade.quantity" in odd.json()["error"]["message"]
    unknown = client.post("/v1/events", json={"events": [transfer("s-5", "C9999999", day)]},
                          headers=auth(keys, Role.INGEST))
    assert unknown.status_code == 422 and "body.events.0.client_id" in unknown.json()["error"]["message"]
    future = dt.date.today() + dt.timedelta(days=3)
    later = client.post("/v1/events", json={"events": [transfer("s-6", someone, future)]},
                        headers=auth(keys, Role.INGEST))
    assert later.status_code == 422 and "events.0.transfer_date" in later.json()["error"]["message"]
    many = [transfer(f"m-{k}", someone, day, transfer_id=3_000_000_000 + k) for k in range(1001)]
    too_many = client.post("/v1/events", json={"events": many}, headers=auth(keys, Role.INGEST))
    assert too_many.status_code == 422 and too_many.json()["error"]["code"] == "batch_too_large"
    huge = client.post("/v1/events", content=b'{"events": [' + b" " * (1024 * 1024) + b"]}",
                       headers={**auth(keys, Role.INGEST), "Content-Type": "application/json"})
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "body_too_large"
    # Nothing refused was stored: the journal holds the one accepted event.
    assert [r.event_id for r in Journal(world.events_dir).all_rows()] == ["s-1"]


def test_a_decision_reflects_an_event_and_says_how_fresh_each_family_is(client: TestClient, world: Settings,
                                                                        keys: dict[Role, str]) -> None:
    someone = open_clients(world)[1]
    day = latest_as_of(world.features_dir)
    first = client.post("/v1/decisions", json={"client_id": someone}, headers=auth(keys, Role.FRONT_OFFICE)).json()
    assert first["freshness"]["client_flow"].startswith(day.isoformat())
    posted = client.post("/v1/events", json={"events": [transfer("f-1", someone, day, amount=12_345.0,
                                                                 transfer_id=2_100_000_000)]},
                         headers=auth(keys, Role.INGEST))
    assert posted.status_code == 202
    wait_for(lambda: Journal(world.events_dir).backlog() == 0)
    second = client.post("/v1/decisions", json={"client_id": someone}, headers=auth(keys, Role.FRONT_OFFICE)).json()
    assert second["freshness"]["client_flow"] > first["freshness"]["client_flow"]
    assert second["freshness"]["client_category"] == first["freshness"]["client_category"]  # no event changes it
    record = client.get(f"/v1/decisions/{second['decision_id']}", headers=auth(keys, Role.COMPLIANCE)).json()
    before = client.get(f"/v1/decisions/{first['decision_id']}", headers=auth(keys, Role.COMPLIANCE)).json()
    assert record["features"]["inflow_30d"] == pytest.approx(before["features"]["inflow_30d"] + 12_345.0)


def _valuable_client_without_alerts(client: TestClient, world: Settings, keys: dict[Role, str]) -> str:
    frame = latest_frame(world.features_dir, ["client_flow:large_withdrawals_90d",
                                              "client_feedback:open_complaints"])
    quiet = frame[(frame.large_withdrawals_90d == 0) & (frame.open_complaints == 0)].index[:400]
    answer = client.post("/v1/decisions/batch", json={"client_ids": list(quiet)},
                         headers=auth(keys, Role.FRONT_OFFICE)).json()
    valuable = [item["client_id"] for item in answer["decisions"]
                if item.get("decision") and item["decision"]["tier"] in ("premier", "large")]
    assert valuable, "the test world has no premier or large client without a large withdrawal"
    return valuable[0]


def test_a_large_withdrawal_by_a_valuable_client_reaches_the_broker_on_the_stream(world: Settings,
                                                                                  keys: dict[Role, str]) -> None:
    with TestClient(create_app(world)) as c:
        someone = _valuable_client_without_alerts(c, world, keys)
    clients = read_table(world.raw_dir, "clients").set_index("client_id")
    broker = clients.at[someone, "broker_id"]
    elsewhere = clients[clients.branch_id != clients.at[someone, "branch_id"]].iloc[0]
    engine = make_engine(world.service_database_url)
    own_key = create_key(engine, Role.FRONT_OFFICE, "alerts-own-broker",
                         Scope(clients.at[someone, "branch_id"], broker))[1]
    other_key = create_key(engine, Role.FRONT_OFFICE, "alerts-other-broker",
                           Scope(elsewhere.branch_id, elsewhere.broker_id))[1]
    engine.dispose()
    day = latest_as_of(world.features_dir)
    with crm_serve(world.home, workers=2, env={"CRM_EVENTS_APPLY_INTERVAL_MS": "20",
                                               "CRM_ONLINE_TIMEOUT_MS": "5000"}) as server:
        received: list[dict] = []
        opened = threading.Event()

        def listen() -> None:
            request = urllib.request.Request(f"{server.base}/v1/alerts/stream?broker_id={broker}",
                                             headers={"Authorization": f"Bearer {keys[Role.FRONT_OFFICE]}"})
            with urllib.request.urlopen(request, timeout=30) as stream:
                opened.set()
                data = None
                for raw in stream:
                    line = raw.decode().rstrip("\n")
                    if line.startswith("data: "):
                        data = json.loads(line[6:])
                    elif line == "" and data is not None:
                        received.append(data)
                        if data["client_id"] == someone:
                            return
                        data = None

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        assert opened.wait(20)
        status, body = post(f"{server.base}/v1/events",
                            {"events": [transfer("w-1", someone, day, amount=80_000.0, direction="out",
                                                 transfer_id=2_200_000_000)]}, keys[Role.INGEST])
        assert status == 202 and body["accepted"] == 1
        listener.join(30)
        alert = next(a for a in received if a["client_id"] == someone)
        assert alert["alert"] == "large_withdrawal_valuable_client" and alert["broker_id"] == broker
        assert alert["event_ids"] == ["w-1"]
        status, decision = post(f"{server.base}/v1/decisions", {"client_id": someone}, keys[Role.FRONT_OFFICE])
        assert "large_withdrawal_valuable_client" in decision["alerts"]
        with urllib.request.urlopen(urllib.request.Request(
                f"{server.base}/v1/decisions/{alert['decision_id']}",
                headers={"Authorization": f"Bearer {keys[Role.COMPLIANCE]}"}), timeout=10) as response:
            audited = json.loads(response.read())
        assert audited["key_id"] == "events" and audited["request"]["event_ids"] == ["w-1"]
        # The same withdrawal again (a duplicate) and a second one raise nothing new: the alert already stands.
        post(f"{server.base}/v1/events", {"events": [transfer("w-1", someone, day, amount=80_000.0,
                                                              direction="out", transfer_id=2_200_000_000)]},
             keys[Role.INGEST])
        with urllib.request.urlopen(urllib.request.Request(
                f"{server.base}/v1/alerts?broker_id={broker}",
                headers={"Authorization": f"Bearer {keys[Role.FRONT_OFFICE]}"}), timeout=10) as response:
            listed = json.loads(response.read())["alerts"]
        assert [a["alert"] for a in listed if a["client_id"] == someone] == ["large_withdrawal_valuable_client"]
        # Alerts are scoped like clients: the client's own broker sees it, a broker of another branch does not,
        # even when asking for the client's broker by name.
        for key, expected in ((own_key, True), (other_key, False)):
            for query in (f"?broker_id={broker}", ""):
                with urllib.request.urlopen(urllib.request.Request(
                        f"{server.base}/v1/alerts{query}", headers={"Authorization": f"Bearer {key}"}),
                        timeout=10) as response:
                    seen = json.loads(response.read())["alerts"]
                assert any(a["client_id"] == someone for a in seen) is expected, (key, query)
                assert all(a["broker_id"] == broker for a in seen) or not expected


def test_the_client_page_shows_each_familys_freshness_and_the_last_events(client: TestClient, world: Settings,
                                                                         keys: dict[Role, str]) -> None:
    someone = open_clients(world)[2]
    day = latest_as_of(world.features_dir)
    posted = client.post("/v1/events", json={"events": [transfer("p-1", someone, day, amount=4_321.0,
                                                                 transfer_id=2_300_000_000)]},
                         headers=auth(keys, Role.INGEST))
    assert posted.status_code == 202
    wait_for(lambda: Journal(world.events_dir).backlog() == 0)
    signed = client.post("/ui/login", data={"key": keys[Role.FRONT_OFFICE]}, follow_redirects=False,
                         headers={"Origin": str(client.base_url)})
    assert signed.status_code == 303
    page = client.get(f"/ui/clients?client_id={someone}")
    assert page.status_code == 200
    html = page.text
    assert 'id="events"' in html and "cash transfer" in html and "4321.0" in html and "yes" in html
    assert 'data-family="client_flow"' in html and 'data-family="client_category"' in html


def test_a_valuable_client_demoted_by_the_withdrawal_itself_is_still_alerted() -> None:
    """The value model reads the client's flows: an 80,000-yuan withdrawal can move a client of the top decile of
    predicted value (large) below it (medium). The client was large when it withdrew: the alert is due."""
    from rules.engine import compile_ruleset
    from rules.model import load_ruleset
    from rules.vocabulary import load_vocabulary
    from service.events import EventService

    vocabulary = load_vocabulary()
    spec = load_ruleset()
    ruleset, findings = compile_ruleset(spec)
    assert ruleset is not None, findings
    inputs = {name: term.default for name, term in vocabulary.terms.items()}
    before = {**inputs, "total_assets": 600_000.0, "value_percentile": 95.0, "large_withdrawals_90d": 0}
    demoted = {**before, "value_percentile": 80.0, "large_withdrawals_90d": 1}
    still_large = {**before, "large_withdrawals_90d": 1}
    models = set(vocabulary.model_sources())
    tables = spec.event_triggered
    assert ruleset.evaluate(demoted, check=False).results["service_tier"]["tier"] == "medium"
    assert EventService.new_alerts(ruleset, before, demoted, models, tables) == ["large_withdrawal_valuable_client"]
    assert EventService.new_alerts(ruleset, before, still_large, models, tables) == [
        "large_withdrawal_valuable_client"]
    # Nothing new: already alerted before, or a medium client before and after.
    assert EventService.new_alerts(ruleset, still_large, still_large, models, tables) == []
    medium = {**before, "value_percentile": 50.0}
    assert EventService.new_alerts(ruleset, medium, {**medium, "large_withdrawals_90d": 1}, models, tables) == []
