"""Outcome capture through the API: every status code, idempotency, durability across a restart, the audit record,
the contact policy reading what was recorded, and the export as raw contacts that the importer accepts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from features.raw.importer import import_directory
from service.app import create_app
from service.db import make_engine
from service.keys import Role
from service.outcomes import all_outcomes, export_contacts
from tests.service.conftest import Api


def decide(api: Api, client_id: str) -> dict:
    response = api.client.post("/v1/decisions", json={"client_id": client_id}, headers=api.headers(Role.FRONT_OFFICE))
    assert response.status_code == 200, response.text
    return response.json()


def offering(api: Api, channel: str | None = None, skip: int = 0) -> dict:
    """A decision that offers at least one action (on ``channel`` when given)."""
    found = 0
    for client_id in api.client_ids:
        d = decide(api, client_id)
        if any(channel in (None, a["channel"]) for a in d["next_best_actions"]):
            if found == skip:
                return d
            found += 1
    raise AssertionError("no client gets a next best action")


def post(api: Api, decision_id: str, role: Role = Role.FRONT_OFFICE, **body: object):
    return api.client.post(f"/v1/decisions/{decision_id}/outcomes", json=body, headers=api.headers(role))


def test_every_status_code_of_outcome_capture(api: Api) -> None:
    d = offering(api)
    action = d["next_best_actions"][0]["action"]
    decided = dt.datetime.fromisoformat(d["decided_at"])
    first = post(api, d["decision_id"], action=action, status="attempted", by="K00001")
    assert first.status_code == 201, first.text
    assert first.json()["channel"] == d["next_best_actions"][0]["channel"]
    again = post(api, d["decision_id"], action=action, status="attempted", by="K00001")
    assert (again.status_code, again.json()["recorded_at"]) == (200, first.json()["recorded_at"])
    cases = [
        (post(api, "0000nothing", action=action, status="reached", by="K00001"), 404, "decision_not_found"),
        (post(api, d["decision_id"], action="no_such_action", status="reached", by="K00001"), 422,
         "action_not_offered"),
        (post(api, d["decision_id"], action=action, status="reached", by="K00001",
              at=(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()), 422, "outcome_time_invalid"),
        (post(api, d["decision_id"], action=action, status="reached", by="K00001",
              at=(decided - dt.timedelta(minutes=1)).isoformat()), 422, "outcome_time_invalid"),
        (post(api, d["decision_id"], action=action, status="maybe", by="K00001"), 422, "request_invalid"),
        (post(api, d["decision_id"], action=action, status="reached"), 422, "request_invalid"),
        (post(api, d["decision_id"], Role.DATA_SCIENTIST, action=action, status="reached", by="K00001"), 403,
         "forbidden"),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), response.text
    stored = [o for o in all_outcomes_of(api) if o["decision_id"] == d["decision_id"]]
    assert [(o["action"], o["status"]) for o in stored] == [(action, "attempted")]


def all_outcomes_of(api: Api) -> list[dict]:
    engine = make_engine(api.settings.service_database_url)
    try:
        return all_outcomes(engine).to_dict(orient="records")
    finally:
        engine.dispose()


def test_outcomes_are_in_the_audit_record_and_survive_a_restart(api: Api) -> None:
    d = offering(api, skip=1)
    action = d["next_best_actions"][0]["action"]
    assert post(api, d["decision_id"], action=action, status="reached", by="K00002").status_code == 201
    record = api.client.get(f"/v1/decisions/{d['decision_id']}", headers=api.headers(Role.COMPLIANCE)).json()
    assert [(o["action"], o["status"]) for o in record["outcomes"]] == [(action, "reached")]
    # Another process of the API (a restart, or a second worker) reads them from the database.
    with TestClient(create_app(api.settings.model_copy(update={"online_timeout_ms": 5_000}))) as restarted:
        again = restarted.get(f"/v1/decisions/{d['decision_id']}", headers=api.headers(Role.COMPLIANCE)).json()
        assert again["outcomes"] == record["outcomes"]
        repeat = restarted.post(f"/v1/decisions/{d['decision_id']}/outcomes", headers=api.headers(Role.FRONT_OFFICE),
                                json={"action": action, "status": "reached", "by": "K00002"})
        assert repeat.status_code == 200


def test_a_declined_action_is_suppressed_in_the_next_decision(api: Api) -> None:
    d = offering(api, skip=2)
    action = d["next_best_actions"][0]["action"]
    assert post(api, d["decision_id"], action=action, status="declined", by="K00003").status_code == 201
    later = decide(api, d["client_id"])
    assert action not in [a["action"] for a in later["next_best_actions"]]
    assert {"action": action, "reason": "suppressed"}.items() <= next(
        w for w in later["withheld_actions"] if w["action"] == action).items()


def test_outcomes_export_as_raw_contacts_the_importer_accepts(api: Api, tmp_path: Path) -> None:
    d = offering(api, skip=3)
    action = d["next_best_actions"][0]["action"]
    for status in ("attempted", "accepted"):
        assert post(api, d["decision_id"], action=action, status=status, by="K00004").status_code == 201
    engine = make_engine(api.settings.service_database_url)
    try:
        outcomes = all_outcomes(engine)
    finally:
        engine.dispose()
    summary = export_contacts(outcomes, api.settings.raw_dir, tmp_path / "export", api.settings.timezone)
    assert summary["contacts_added"] == outcomes.drop_duplicates(["decision_id", "action"]).shape[0]
    before = len(pd.read_parquet(api.settings.raw_dir / "contacts.parquet"))
    imported = import_directory(tmp_path / "export", tmp_path / "raw")  # raises, naming each fault, if refused
    assert imported.rows["contacts"] == before + summary["contacts_added"]
    contacts = pd.read_parquet(tmp_path / "raw" / "contacts.parquet")
    mine = contacts[contacts["client_id"] == d["client_id"]].tail(1).iloc[0]
    assert mine["outcome"] == "interested"  # accepted wins over attempted: one contact per decision and action


@pytest.mark.parametrize("path", ["/v1/queue?broker_id=K00001", "/v1/decisions/x/outcomes"])
def test_closed_loop_endpoints_need_a_key(api: Api, path: str) -> None:
    response = api.client.get(path) if "queue" in path else api.client.post(path, json={})
    assert (response.status_code, response.json()["error"]["code"]) == (401, "unauthenticated")
