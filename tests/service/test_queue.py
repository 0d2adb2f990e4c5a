"""The broker's work queue: ranked across clients, within capacity, without what is done or suppressed; the page
where one click records an outcome (CSRF-protected); the branch manager's view of completion."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from rules.catalogue import Catalogue
from rules.model import load_ruleset
from rules.vocabulary import load_vocabulary
from service.arbitration import Arbiter
from service.contact_history import Contact, ContactHistory
from service.db import make_engine, outcomes
from service.keys import Role
from service.outcomes import Outcomes
from service.queue import WorkQueues, make_plan, write_plan
from tests.service.conftest import Api

DAY = dt.date(2026, 11, 30)
ARBITER = Arbiter(Catalogue.model_validate(load_ruleset().catalogue.model_dump()), load_vocabulary().products, 3)


def planned(k: int, action: str = "broker_retention_call", broker: str = "K1", deliverer: str = "broker") -> dict:
    return {"client_id": f"C{k:04d}", "broker_id": broker, "branch_id": "B1", "decision_id": f"d{k:04d}",
            "rank": 1, "action": action, "deliverer": deliverer, "channel": "phone", "priority": 1000.0 - k,
            "reason": "test", "churn_probability": 0.3, "lifecycle_stage": "at_risk", "arm": "champion",
            "as_of": "2026-10-31"}


@pytest.fixture
def queues(tmp_path: Path) -> tuple[WorkQueues, ContactHistory, object]:
    engine = make_engine(f"sqlite:///{tmp_path / 'service.db'}")
    contacts = ContactHistory()
    store = Outcomes(engine, None, contacts, "Asia/Shanghai")  # type: ignore[arg-type]  # no lookups by decision
    yield WorkQueues(tmp_path / "queue", store, contacts, "Asia/Shanghai", lambda: ARBITER), contacts, engine
    engine.dispose()


def done(engine, k: int, status: str, on: dt.date) -> None:
    with engine.begin() as conn:
        conn.execute(outcomes.insert().values(
            decision_id=f"d{k:04d}", action="broker_retention_call", status=status, client_id=f"C{k:04d}",
            channel="phone", by="K1", at=f"{on.isoformat()}T10:00:00+08:00", recorded_at=f"{on}T02:00:00+00:00",
            key_id="test"))


def test_the_queue_respects_the_daily_capacity_and_ranks_across_clients(queues) -> None:
    work, _, engine = queues
    write_plan([planned(k) for k in range(40)] + [planned(99, broker="K2")], work.folder, DAY)
    q = work.for_broker("K1", DAY)
    capacity = ARBITER.terms["broker_retention_call"].daily_capacity  # 25 calls a day per broker
    assert len(q["items"]) == capacity and q["left_out"] == {"done": 0, "suppressed": 0, "capacity": 40 - capacity}
    assert [i["client_id"] for i in q["items"]] == [f"C{k:04d}" for k in range(capacity)]  # best priority first
    # Five calls made today take five places of today's capacity; the five clients leave the queue.
    for k in range(5):
        done(engine, k, "reached", DAY)
    q = work.for_broker("K1", DAY)
    assert q["done_today"] == 5 and len(q["items"]) == capacity - 5
    assert q["items"][0]["client_id"] == "C0005"
    # Done yesterday: out of the queue, but today's capacity is whole again.
    q = work.for_broker("K1", DAY + dt.timedelta(days=1))
    assert q["done_today"] == 0 and len(q["items"]) == capacity and q["left_out"]["done"] == 5


def test_attempts_stay_in_the_queue_and_declines_within_suppression_leave_it(queues) -> None:
    work, contacts, engine = queues
    write_plan([planned(k) for k in range(3)], work.folder, DAY)
    done(engine, 0, "attempted", DAY)
    contacts.add("C0001", Contact(DAY - dt.timedelta(days=3), "phone", "broker_retention_call", "declined"))
    q = work.for_broker("K1", DAY)
    assert [(i["client_id"], i["statuses"]) for i in q["items"]] == [("C0000", ["attempted"]), ("C0002", [])]
    assert q["left_out"]["suppressed"] == 1


def test_the_plan_of_an_earlier_day_serves_until_a_new_one_is_made(queues) -> None:
    work, _, _ = queues
    assert work.for_broker("K1", DAY) is None
    write_plan([planned(1)], work.folder, DAY - dt.timedelta(days=2))
    q = work.for_broker("K1", DAY)
    assert q["plan_date"] == (DAY - dt.timedelta(days=2)).isoformat() and len(q["items"]) == 1


def test_the_branch_manager_sees_each_brokers_completion_and_their_own_actions(queues) -> None:
    work, _, engine = queues
    write_plan([planned(k) for k in range(4)] + [planned(10, broker="K2"), planned(11, "branch_manager_call",
                                                                              deliverer="branch_manager")],
               work.folder, DAY)
    done(engine, 0, "accepted", DAY)
    b = work.for_branch("B1", DAY)
    assert [(r["broker_id"], r["planned"], r["open"], r["done"], r["completion"]) for r in b["brokers"]] == [
        ("K1", 4, 3, 1, 0.25), ("K2", 1, 1, 0, 0.0)]
    assert [i["action"] for i in b["manager_queue"]["items"]] == ["branch_manager_call"]


# Through the API and the page, on the trained test world ------------------------------------------------------


def test_a_plan_a_brokers_queue_and_one_click_on_the_page(api: Api) -> None:
    runtime = api.client.app.state.runtime
    summary = make_plan(runtime, api.client_ids[:400], DAY)
    assert summary["clients_decided"] == 400 and summary["actions_planned"] > 0
    import pandas as pd

    plan = pd.read_parquet(summary["out"])
    broker = plan[plan["deliverer"] == "broker"]["broker_id"].value_counts().index[0]
    fo = api.headers(Role.FRONT_OFFICE)
    q = api.client.get(f"/v1/queue?broker_id={broker}&date={DAY}", headers=fo).json()
    priorities = [i["priority"] for i in q["items"]]
    assert priorities and priorities == sorted(priorities, reverse=True)
    assert {i["client_id"] for i in q["items"]} <= set(plan[plan["broker_id"] == broker]["client_id"])
    assert api.client.get(f"/v1/queue?broker_id=K99999&date={DAY}", headers=fo).json()["error"]["code"] == \
        "broker_not_found"

    # The page: sign in with the key, open the queue, click "Reached" on the first item.
    page = api.client
    signed = page.post("/ui/login", data={"key": api.keys[Role.FRONT_OFFICE]}, follow_redirects=False)
    assert signed.status_code == 303
    html = page.get(f"/ui/queue?broker_id={broker}&date={DAY}").text
    first = q["items"][0]
    assert first["decision_id"] in html
    csrf = re.search(r'name="csrf" value="([^"]+)"', html).group(1)
    form = {"decision_id": first["decision_id"], "action": first["action"], "client_id": first["client_id"],
            "broker_id": broker, "by": broker, "date": str(DAY), "status": "reached"}
    refused = page.post("/ui/queue/outcome", data={**form, "csrf": "forged"}, follow_redirects=False)
    assert refused.status_code == 403 and "csrf_failed" in refused.text
    clicked = page.post("/ui/queue/outcome", data={**form, "csrf": csrf}, follow_redirects=False)
    assert clicked.status_code == 303 and "recorded=" in clicked.headers["location"]
    after = api.client.get(f"/v1/queue?broker_id={broker}&date={DAY}", headers=fo).json()
    assert (first["decision_id"], first["action"]) not in {(i["decision_id"], i["action"]) for i in after["items"]}
    record = api.client.get(f"/v1/decisions/{first['decision_id']}", headers=api.headers(Role.COMPLIANCE)).json()
    assert [(o["action"], o["status"], o["by"]) for o in record["outcomes"]] == [(first["action"], "reached", broker)]
    cards = api.client.get("/v1/scorecards/brokers", headers=fo).json()["brokers"]
    mine = next(c for c in cards if c["broker_id"] == broker)
    assert mine["actions_delivered"] >= 1 and mine["actions_recommended"] >= len(q["items"])
    assert page.get("/ui/experiments").status_code == 200
    page.post("/ui/logout", data={"csrf": csrf})
