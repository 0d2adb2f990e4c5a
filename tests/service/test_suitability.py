"""The suitability mismatch says why, in words that name catalogued indicators."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from config import Settings
from features.indicators.compute import catalog, view_path, views
from features.store.feature_store import offline_dir
from model_registry.registry import Registry
from service.decisions import score_many
from service.scoring import Models
from service.suitability import mismatch_evidence

REFERENCE = {
    "growth_board_buy_share_365d": {"direction": 1, "spread": 0.3,
                                    "class_medians": {"conservative": 0.05, "balanced": 0.15, "aggressive": 0.4}},
    "securitisation_ratio_avg_12m": {"direction": 1, "spread": 0.3,
                                     "class_medians": {"conservative": 0.4, "balanced": 0.6, "aggressive": 0.8}},
    "positions_count_avg_12m": {"direction": 1, "spread": 2.0,
                                "class_medians": {"conservative": 2.0, "balanced": 3.0, "aggressive": 4.5}},
    "holding_period_days_avg": {"direction": -1, "spread": 100.0,
                                "class_medians": {"conservative": 300.0, "balanced": 200.0, "aggressive": 120.0}},
}


def test_evidence_is_the_indicators_past_half_way_to_the_riskier_class_strongest_first() -> None:
    values = {"growth_board_buy_share_365d": 0.7, "securitisation_ratio_avg_12m": 0.65,
              "positions_count_avg_12m": 2.1, "holding_period_days_avg": 90.0}
    found = mismatch_evidence(values, REFERENCE, "conservative", "aggressive")
    assert [e["indicator"] for e in found] == ["growth_board_buy_share_365d", "holding_period_days_avg",
                                               "securitisation_ratio_avg_12m"]
    first = found[0]
    assert first["value"] == 0.7 and first["stated_class_median"] == 0.05 and first["behaviour_class_median"] == 0.4
    assert "growth_board_buy_share_365d = 0.7" in first["text"] and "创业板/科创板买入占比" in first["text"]
    assert "aggressive" in first["text"] and "conservative" in first["text"]


def test_no_evidence_from_missing_values_or_values_on_the_stated_side() -> None:
    values = {"growth_board_buy_share_365d": None, "securitisation_ratio_avg_12m": 0.3,
              "positions_count_avg_12m": float("nan"), "holding_period_days_avg": 400.0}
    assert mismatch_evidence(values, REFERENCE, "conservative", "aggressive") == []


def test_mismatched_decisions_name_catalogued_indicators(model_home: Settings, risk_rows) -> None:
    models = Models.load(Registry(model_home.tracking_uri, model_home.mlflow_artifacts_dir))
    scored = score_many(models, risk_rows)
    mismatched = [s["risk_profile"] for s in scored if s["risk_profile"]["suitability_mismatch"]]
    assert mismatched, "some clients of the model world behave riskier than they state"
    names = {i.name for i in catalog()}
    with_evidence = [r for r in mismatched if r["mismatch_evidence"]]
    assert len(with_evidence) >= 0.8 * len(mismatched)
    for profile in with_evidence:
        assert {e["indicator"] for e in profile["mismatch_evidence"]} <= names
        assert all(e["text"].startswith(e["indicator"]) for e in profile["mismatch_evidence"])
    consistent = [s["risk_profile"] for s in scored if not s["risk_profile"]["suitability_mismatch"]]
    assert all(r["mismatch_evidence"] == [] for r in consistent)


@pytest.fixture(scope="module")
def risk_rows(model_home: Settings) -> list[dict]:
    """Every client's latest indicator values, as the online store holds them (from the offline tables)."""
    frame = None
    for view in views():
        if view.entity != "client":
            continue
        part = pd.read_parquet(view_path(offline_dir(model_home.features_dir), view.name))
        part = part[part["as_of"] == part["as_of"].max()].drop(columns=["as_of", "event_timestamp",
                                                                         "created_timestamp"])
        frame = part if frame is None else frame.merge(part, on="client_id")
    rows = frame.head(800).to_dict("records")
    return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()} for row in rows]
