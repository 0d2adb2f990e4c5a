"""Lifecycle stages on hand-built histories, the register of departures, and win-back actions by recorded cause."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from rules.engine import build
from rules.model import load_ruleset
from rules.vocabulary import load_vocabulary
from service.lifecycle import Departure, Register, record_departures, stage
from service.rule_inputs import client_inputs

RULESET = build(load_ruleset())
VOCABULARY = load_vocabulary()


def values(**overrides: object) -> dict[str, object]:
    """An established, funded, trading client's indicators."""
    return {"total_assets": 250_000.0, "tenure_days": 800, "dormant_90d": False, "outflow_365d": 10_000.0,
            "commission_365d": 3_000.0, **overrides}


def scores(band: str = "low", cause: str = "competitor", probability: float = 0.02) -> dict:
    return {"churn": {"probability": probability, "band": band, "likely_cause": cause},
            "value": {"amount_yuan": 4_000.0, "percentile": 60.0}, "risk_profile": {"class": "balanced"}}


@pytest.mark.parametrize(("indicators", "band", "departure", "expected"), [
    (values(), "low", None, "active"),
    (values(), "high", None, "at_risk"),
    (values(tenure_days=30), "high", None, "new"),
    (values(dormant_90d=True), "low", None, "dormant"),
    (values(dormant_90d=True, total_assets=200.0, outflow_365d=0.0), "low", None, "active"),  # never funded
    (values(total_assets=300.0, outflow_365d=240_000.0), "low", None, "lost"),  # money left this year
    (values(total_assets=300.0, outflow_365d=0.0), "low", Departure("2024-03-31", "service", None), "lost"),
    (values(), "low", Departure("2024-03-31", "service", "2024-05-02"), "lost"),  # closed
])
def test_stage(indicators: dict, band: str, departure: Departure | None, expected: str) -> None:
    assert stage(indicators["total_assets"], indicators["tenure_days"], indicators["dormant_90d"],
                 indicators["outflow_365d"], band, departure) == expected


def test_a_lost_client_gets_win_back_actions_by_the_cause_recorded_when_it_left() -> None:
    # Today's model says "poor trading" for what is left of the account; the register says it left for a
    # competitor's price at its last active month-end: the decision follows the register.
    departure = Departure("2024-09-30", "competitor", None)
    inputs = client_inputs(VOCABULARY, values(total_assets=120.0, dormant_90d=True), scores("high", "poor_trading"),
                           departure)
    assert (inputs["lifecycle_stage"], inputs["churn_cause"]) == ("lost", "competitor")
    decision = RULESET.evaluate(inputs)
    assert "win_back_rate_offer" in decision.actions
    retention = {"senior_advisor_visit", "review_commission_rate", "broker_retention_call",
                 "investment_advisory_session", "investor_education", "branch_manager_call"}
    assert not retention & set(decision.actions)


def test_an_at_risk_client_gets_retention_and_no_win_back() -> None:
    inputs = client_inputs(VOCABULARY, values(), scores("high", "competitor", 0.4))
    decision = RULESET.evaluate(inputs)
    assert inputs["lifecycle_stage"] == "at_risk"
    assert "broker_retention_call" in decision.actions
    assert not {a for a in decision.actions if a.startswith("win_back") or a == "reactivation_call"}


def test_a_degraded_decision_takes_the_default_stage() -> None:
    assert client_inputs(VOCABULARY, None, None)["lifecycle_stage"] == "active"


def _offline(tmp_path: Path) -> tuple[Path, Path]:
    offline, raw = tmp_path / "offline", tmp_path / "raw"
    offline.mkdir()
    raw.mkdir()
    ends = [dt.date(2024, 1, 31), dt.date(2024, 2, 29), dt.date(2024, 3, 31), dt.date(2024, 4, 30)]
    assets = {"C1": [50_000, 60_000, 800, 500],  # left after February
              "C2": [10_000, 11_000, 12_000, 13_000],  # stays
              "C3": [200, 300, 100, 0],  # never active
              "C4": [5_000, 5_000, 5_000]}  # closed in April (no April row)
    rows = [{"client_id": c, "as_of": ends[k], "total_assets": float(v)}
            for c, series in assets.items() for k, v in enumerate(series)]
    pd.DataFrame(rows).to_parquet(offline / "client_category.parquet")
    pd.DataFrame({"client_id": ["C1", "C2", "C3", "C4"],
                  "closed_on": [None, None, None, dt.date(2024, 4, 10)]}).to_parquet(raw / "clients.parquet")
    return offline, raw


def test_the_register_keeps_the_last_active_month_end_and_the_cause_then(tmp_path: Path) -> None:
    offline, raw = _offline(tmp_path)
    asked = []

    def causes(frame: pd.DataFrame) -> list[str]:
        asked.extend(zip(frame["client_id"], frame["last_active"], strict=True))
        return ["competitor" if c == "C1" else "service" for c in frame["client_id"]]

    summary = record_departures(offline, raw, causes, tmp_path / "lifecycle")
    register = Register.load(tmp_path / "lifecycle")
    assert sorted(asked) == [("C1", dt.date(2024, 2, 29)), ("C4", dt.date(2024, 3, 31))]
    assert register.get("C1") == Departure("2024-02-29", "competitor", None)
    assert register.get("C4") == Departure("2024-03-31", "service", "2024-04-10")
    assert register.get("C2") is None and register.get("C3") is None
    assert summary["departed"] == 2 and summary["closed"] == 1
    assert not register.stale(tmp_path / "lifecycle")


# ------------------------------------------------------------------ churn scoring applies to active and at-risk only


@pytest.mark.parametrize(("indicators", "departure", "expected"), [
    (values(dormant_90d=True), None, "dormant"),
    (values(tenure_days=30), None, "new"),
    (values(total_assets=300.0, outflow_365d=240_000.0), None, "lost"),
    (values(total_assets=300.0), Departure("2024-03-31", "competitor", None), "lost"),
])
def test_outside_active_and_at_risk_the_rules_read_no_churn_score(indicators: dict, departure: Departure | None,
                                                                  expected: str) -> None:
    inputs = client_inputs(VOCABULARY, indicators, scores("high", "poor_trading", 0.6), departure)
    assert inputs["lifecycle_stage"] == expected
    # The churn terms are the vocabulary's defaults, not the model's high band; a lost client keeps the cause
    # recorded when it left.
    assert (inputs["churn_probability"], inputs["churn_band"]) == (0.0, "low")
    assert inputs["churn_cause"] == (departure.cause if departure else VOCABULARY.terms["churn_cause"].default)
    decision = RULESET.evaluate(inputs)
    retention = {"senior_advisor_visit", "broker_retention_call", "investment_advisory_session"}
    assert not retention & set(decision.actions)
    if expected == "dormant":
        assert "reactivation_call" in decision.actions


def test_active_and_at_risk_clients_keep_their_churn_score() -> None:
    for band, expected in (("low", "active"), ("high", "at_risk")):
        inputs = client_inputs(VOCABULARY, values(), scores(band, "competitor", 0.3))
        assert (inputs["lifecycle_stage"], inputs["churn_band"], inputs["churn_probability"]) == (expected, band, 0.3)


def test_a_closed_account_without_indicators_is_lost_with_the_cause_it_left_for() -> None:
    departure = Departure("2024-06-30", "service", "2024-08-02")
    inputs = client_inputs(VOCABULARY, None, None, departure)
    assert (inputs["lifecycle_stage"], inputs["churn_cause"]) == ("lost", "service")
    assert "win_back_service_apology" in RULESET.evaluate(inputs).actions


# ------------------------------------------------------- a trained world: the API, the simulation, batch scoring


@pytest.fixture(scope="module")
def departed(model_home, tmp_path_factory: pytest.TempPathFactory):
    """A home of its own over the trained test world with the register of departures recorded by `crm lifecycle
    record`, and an API over it (the bundled ruleset active)."""
    import os

    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from cli.main import app as cli
    from config import get_settings
    from service.app import create_app
    from service.db import make_engine
    from service.keys import Role, create_key
    from service.scope import FIRM_WIDE
    from tests.service.conftest import copy_home

    settings = copy_home(model_home, tmp_path_factory.mktemp("departed") / "home",
                         rate_limits={r.value: 100_000 for r in Role})
    os.environ["CRM_HOME"] = str(settings.home)
    get_settings.cache_clear()
    try:
        recorded = CliRunner().invoke(cli, ["lifecycle", "record", "--json"])
    finally:
        del os.environ["CRM_HOME"]
        get_settings.cache_clear()
    assert recorded.exit_code == 0, recorded.output
    engine = make_engine(settings.service_database_url)
    keys = {role: create_key(engine, role, role.value, FIRM_WIDE)[1] for role in (Role.FRONT_OFFICE, Role.COMPLIANCE)}
    engine.dispose()
    with TestClient(create_app(settings)) as client:
        yield settings, Register.load(settings.lifecycle_dir), client, keys


def _decide(departed, client_id: str):
    from service.keys import Role

    _, _, client, keys = departed
    return client.post("/v1/decisions", json={"client_id": client_id},
                       headers={"Authorization": f"Bearer {keys[Role.FRONT_OFFICE]}"})


def test_a_closed_account_is_decided_as_lost_with_its_recorded_cause_and_win_back(departed) -> None:
    from service.keys import Role

    settings, register, client, keys = departed
    closed = register.closed()
    assert closed, "the test world has closed accounts that had been active"
    online = set(pd.read_parquet(settings.features_dir / "offline" / "client_category.parquet",
                                 columns=["client_id", "as_of"]).query("as_of == as_of.max()")["client_id"])
    gone = sorted(c for c in closed if c not in online)
    assert gone, "some closed accounts have no row in the online store"
    for client_id in gone[:5]:
        response = _decide(departed, client_id)
        assert response.status_code == 200, response.text
        body = response.json()
        departure = closed[client_id]
        assert body["lifecycle"] == {"stage": "lost", "churn_scored": False, "cause": departure.cause,
                                     "last_active": departure.last_active, "closed_on": departure.closed_on}
        assert body["degraded"] is False and body["scores"] is None
        assert any(a.startswith("win_back") for a in body["actions"]), body["actions"]
        if body["arm"] != "holdout":
            assert any(a["action"].startswith("win_back") for a in body["next_best_actions"])
        # The audited decision replays to the same answer.
        replay = client.post(f"/v1/decisions/{body['decision_id']}/replay",
                             headers={"Authorization": f"Bearer {keys[Role.COMPLIANCE]}"})
        assert replay.status_code == 200 and replay.json()["identical"], replay.json()["differences"]
    # A client that never existed is still not found.
    unknown = _decide(departed, "C9999999")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "client_not_found"


def test_only_active_and_at_risk_clients_carry_a_churn_score(departed) -> None:
    from features.store.feature_store import latest_frame

    settings, _, _, _ = departed
    frame = latest_frame(settings.features_dir, ["client_category:total_assets"])
    seen: dict[str, int] = {}
    for client_id in list(frame.index)[:400]:
        body = _decide(departed, client_id).json()
        stage_now = body["lifecycle"]["stage"]
        seen[stage_now] = seen.get(stage_now, 0) + 1
        scored = stage_now in ("active", "at_risk")
        assert body["lifecycle"]["churn_scored"] is scored
        assert (body["scores"]["churn"] is not None) is scored, (client_id, stage_now)
        if not scored:
            assert body["reasons"]["churn_contributors"] == []
        assert body["scores"]["value"] is not None and body["scores"]["risk_profile"] is not None
    assert seen.get("active", 0) and (seen.get("dormant", 0) or seen.get("lost", 0)), seen


def test_the_simulation_reads_the_register_as_the_api_does(departed) -> None:
    from model_registry.registry import Registry
    from service.scoring import Models
    from service.simulation import load_population

    settings, register, _, _ = departed
    models = Models.load(Registry(settings.tracking_uri, settings.mlflow_artifacts_dir), threads=0)
    population = load_population(settings.features_dir, settings.home / "scores", models, VOCABULARY, register)
    rows = dict(zip(population.client_ids, population.inputs, strict=True))
    # Every departure is in the population as lost with the cause recorded when it left, closed accounts included.
    lost_in_register = [c for c, d in register.departures.items()
                        if d.closed or rows.get(c, {}).get("total_assets", 0.0) < 1_000.0]
    assert lost_in_register
    for client_id in lost_in_register:
        assert rows[client_id]["lifecycle_stage"] == "lost", client_id
        assert rows[client_id]["churn_cause"] == register.get(client_id).cause
    # And each client's stage and churn terms are the ones its API decision reads.
    sample = lost_in_register[:5] + [c for c in population.client_ids if c not in register.departures][:40]
    for client_id in sample:
        body = _decide(departed, client_id).json()
        assert body["lifecycle"]["stage"] == rows[client_id]["lifecycle_stage"], client_id
        if body["lifecycle"]["stage"] == "lost":
            assert body["lifecycle"]["cause"] == rows[client_id]["churn_cause"]
        if not body["lifecycle"]["churn_scored"]:
            assert (rows[client_id]["churn_probability"], rows[client_id]["churn_band"]) == (0.0, "low")
