"""The decision API as front-office systems, data scientists and compliance officers meet it."""

from __future__ import annotations

import os
import time

import pytest

from service.keys import Role
from tests.service.conftest import Api


def decide(api: Api, client_id: str, role: Role = Role.FRONT_OFFICE):
    return api.client.post("/v1/decisions", json={"client_id": client_id}, headers=api.headers(role))


def test_a_decision_has_everything_a_front_office_needs(api: Api) -> None:
    response = decide(api, api.client_ids[0])
    assert response.status_code == 200, response.text
    d = response.json()
    assert d["tier"] in ("premier", "large", "medium", "small") and d["package"]
    assert not d["degraded"] and d["as_of"]
    churn = d["scores"]["churn"]
    assert 0 <= churn["probability"] <= 1 and churn["likely_cause"] in ("poor_trading", "competitor", "service")
    assert 0 <= d["scores"]["value"]["percentile"] <= 100
    assert abs(sum(d["scores"]["risk_profile"]["probabilities"].values()) - 1) < 1e-4
    assert d["reasons"]["rules"] and all({"table", "rule", "description"} <= set(r) for r in d["reasons"]["rules"])
    assert set(d["versions"]["models"]) == {"churn", "value", "risk_profile", "retention_uplift"}
    assert len(d["versions"]["ruleset"]) == 64
    assert d["decision_id"]


@pytest.mark.parametrize(("headers", "status", "code"), [
    ({}, 401, "unauthenticated"),
    ({"Authorization": "Bearer crm_nope_nope"}, 401, "unauthenticated"),
    ({"Authorization": "Basic abc"}, 401, "unauthenticated"),
])
def test_missing_or_invalid_keys_are_refused(api: Api, headers: dict, status: int, code: str) -> None:
    response = api.client.post("/v1/decisions", json={"client_id": api.client_ids[0]}, headers=headers)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)


def test_every_error_has_its_status_and_stable_code(api: Api) -> None:
    fo, co = api.headers(Role.FRONT_OFFICE), api.headers(Role.COMPLIANCE)
    cases = [
        (api.client.post("/v1/decisions", json={"client_id": "C9999999"}, headers=fo), 404, "client_not_found"),
        (api.client.post("/v1/decisions", json={"clientid": "C1"}, headers=fo), 422, "request_invalid"),
        (api.client.post("/v1/decisions", content=b"{not json", headers={**fo, "content-type": "application/json"}),
         422, "request_invalid"),
        (api.client.post("/v1/decisions/batch", json={"client_ids": ["C1"] * 1001}, headers=fo), 422,
         "batch_too_large"),
        (api.client.post("/v1/decisions", content=b" " * 70_000, headers={**fo, "content-type": "application/json"}),
         413, "body_too_large"),
        (api.client.get("/v1/decisions/0000nothing", headers=co), 404, "decision_not_found"),
        (api.client.get("/v1/rulesets/active", headers=fo), 403, "forbidden"),
        (api.client.post("/v1/rulesets/abcdef0123/approve", json={"note": "x"}, headers=co), 404,
         "ruleset_version_not_found"),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), response.text
    invalid = api.client.post("/v1/decisions", json={"clientid": "C1"}, headers=fo).json()["error"]
    assert "body.client_id" in invalid["message"]  # the field is named


def test_a_chunked_body_over_64kb_is_refused(api: Api) -> None:
    def chunks():
        for _ in range(20):
            yield b" " * 4096

    response = api.client.post("/v1/decisions", content=chunks(),
                               headers={**api.headers(Role.FRONT_OFFICE), "content-type": "application/json"})
    assert response.status_code == 413


ENDPOINTS = [
    ("POST", "/v1/decisions", {"client_id": "C0000001"}, {Role.FRONT_OFFICE}),
    ("POST", "/v1/decisions/batch", {"client_ids": ["C0000001"]}, {Role.FRONT_OFFICE}),
    ("GET", "/v1/decisions/{decision_id}", None, {Role.COMPLIANCE}),
    ("POST", "/v1/decisions/{decision_id}/replay", None, {Role.COMPLIANCE}),
    ("GET", "/v1/models", None, {Role.DATA_SCIENTIST}),
    ("POST", "/v1/models/reload", None, {Role.DATA_SCIENTIST}),
    ("GET", "/v1/rulesets/active", None, {Role.COMPLIANCE}),
    ("GET", "/v1/rulesets", None, {Role.COMPLIANCE}),
    ("POST", "/v1/rulesets", {"ruleset": {}, "note": "x"}, {Role.COMPLIANCE}),
    ("POST", "/v1/rulesets/{version}/approve", {"note": "x"}, {Role.COMPLIANCE}),
    ("POST", "/v1/rulesets/{version}/reject", {"note": "x"}, {Role.COMPLIANCE}),
    ("POST", "/v1/rulesets/{version}/activate", {"note": "x"}, {Role.COMPLIANCE}),
]


@pytest.mark.parametrize(("method", "path", "body", "allowed"), ENDPOINTS, ids=[f"{m} {p}" for m, p, *_ in ENDPOINTS])
@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
def test_role_matrix(api: Api, method: str, path: str, body: dict | None, allowed: set, role: Role) -> None:
    decision_id = decide(api, api.client_ids[1]).json()["decision_id"]
    time.sleep(0.05)  # the audit writer lands the record
    url = path.format(decision_id=decision_id, version="0" * 12)
    response = api.client.request(method, url, json=body, headers=api.headers(role))
    if role in allowed or role is Role.ADMIN:
        assert response.status_code not in (401, 403), response.text
        assert response.status_code < 500, response.text
    else:
        assert (response.status_code, response.json()["error"]["code"]) == (403, "forbidden")


def test_open_endpoints(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    ready = api.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"]
    assert "crm_requests_total" in api.client.get("/metrics").text
    assert api.client.get("/docs").status_code == 200
    assert "/v1/decisions" in api.client.get("/openapi.json").json()["paths"]


def test_batch_keeps_order_and_reports_unknown_clients(api: Api) -> None:
    ids = [api.client_ids[2], "C9999999", api.client_ids[3]]
    response = api.client.post("/v1/decisions/batch", json={"client_ids": ids}, headers=api.headers(Role.FRONT_OFFICE))
    items = response.json()["decisions"]
    assert [i["client_id"] for i in items] == ids
    assert items[1]["error"]["code"] == "client_not_found" and items[0]["decision"]["tier"]


def test_a_batch_decides_exactly_as_single_requests_do(api: Api) -> None:
    # A batch scores its clients together (one model run for all); each client must get what it gets alone.
    ids = api.client_ids[40:140]
    fo = api.headers(Role.FRONT_OFFICE)
    batch = api.client.post("/v1/decisions/batch", json={"client_ids": ids}, headers=fo).json()["decisions"]
    compared = ("tier", "package", "actions", "alerts", "scores", "reasons", "versions", "as_of", "degraded")
    for client_id, item in zip(ids, batch, strict=True):
        single = decide(api, client_id).json()
        assert {k: item["decision"][k] for k in compared} == {k: single[k] for k in compared}, client_id


def test_replay_reproduces_a_sample_of_decisions(api: Api) -> None:
    ids = [decide(api, c).json()["decision_id"] for c in api.client_ids[10:30]]
    time.sleep(0.1)
    for decision_id in ids:
        record = api.client.get(f"/v1/decisions/{decision_id}", headers=api.headers(Role.COMPLIANCE)).json()
        assert record["features"] and record["key_id"] and record["model_versions"]
        replay = api.client.post(f"/v1/decisions/{decision_id}/replay", headers=api.headers(Role.COMPLIANCE)).json()
        assert replay["identical"], replay["differences"]


def test_degraded_when_the_online_store_is_taken_away(api: Api) -> None:
    online = api.settings.features_dir / "online.db"
    away = online.with_suffix(".away")
    os.rename(online, away)
    try:
        response = decide(api, api.client_ids[4])
        assert response.status_code == 200
        d = response.json()
        assert d["degraded"] and d["scores"] is None and d["tier"] == "small"  # conservative defaults
        assert "online store" in d["degraded_reason"]
        assert api.client.get("/readyz").status_code == 503
    finally:
        os.rename(away, online)
    assert not decide(api, api.client_ids[4]).json()["degraded"]


def test_maker_checker_over_the_api(api: Api) -> None:
    from rules.model import load_ruleset

    canonical = load_ruleset().canonical()
    canonical["tables"][0]["rules"][0]["when"]["total_assets"] = ">= 4_000_000"
    canonical["tables"][0]["rules"][2]["when"]["total_assets"] = "[1_000_000..4_000_000)"
    officer_1, officer_2 = api.headers(Role.COMPLIANCE), api.headers(Role.ADMIN)
    submitted = api.client.post("/v1/rulesets", json={"ruleset": canonical, "note": "premier from 4m"},
                                headers=officer_1)
    assert submitted.status_code == 201, submitted.text
    version = submitted.json()["version"]
    refused = api.client.post(f"/v1/rulesets/{version}/approve", json={"note": "mine"}, headers=officer_1)
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "approval_refused")
    assert api.client.post(f"/v1/rulesets/{version}/approve", json={"note": "ok"}, headers=officer_2).status_code == 200
    broken = {**canonical, "tables": [{**canonical["tables"][0], "hit_policy": "UNIQUE"}, *canonical["tables"][1:]]}
    invalid = api.client.post("/v1/rulesets", json={"ruleset": broken, "note": "unique"}, headers=officer_1)
    assert (invalid.status_code, invalid.json()["error"]["code"]) == (422, "ruleset_invalid")
    assert "overlap" in invalid.json()["error"]["message"]
