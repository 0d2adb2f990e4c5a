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
