"""The retention uplift model: the learner recovers a known effect, campaigns never leak into the test window,
the promotion gate and the evaluation against the truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from config import Settings
from features.indicators.compute import view_path
from features.store.feature_store import offline_dir
from model_registry.onnx_export import OnnxScorer
from model_registry.registry import CHAMPION
from rules.model import load_ruleset
from training.pipeline import registry
from training.uplift import (
    NO_ACTION,
    ActionTarget,
    Campaign,
    action_effect,
    action_effects,
    action_targets,
    build_uplift_data,
    fit_uplift,
    overpayment_removed,
    predict_uplift,
    qini_from_gains,
    split_campaigns,
    with_action,
)

UPLIFT_MODEL = "retention_uplift"
NAMES = ["commission_rate", "satisfaction_latest", "return_6m", "open_complaints"]
GROUPS = {"competitor": ["commission_rate"], "service": ["satisfaction_latest", "open_complaints"],
          "poor_trading": ["return_6m"]}
# What the hand-built world's actions work on: a review removes a share of the competitor part whatever the rate.
HAND_BUILT = {"review_commission_rate": ActionTarget("competitor", None, 0.35),
              "branch_manager_call": ActionTarget("service", None, 0.30)}


def _hand_built(n_control: int = 40_000, n_treated: int = 6_000, seed: int = 3):
    """Clients whose churn comes from a competitor part (commission rate) and a service part (low satisfaction):
    a commission review removes half of the competitor part, a branch manager's call 80% of the service part."""
    rng = np.random.default_rng(seed)
    n = n_control + 2 * n_treated
    rate = rng.uniform(0.0001, 0.0008, n)
    satisfaction = rng.integers(1, 6, n).astype(float)
    x = np.column_stack([rate, satisfaction, rng.normal(0, 0.1, n), np.zeros(n)]).astype(np.float32)
    competitor = 0.3 * np.clip((rate - 0.0002) / 0.0006, 0, 1)
    service = 0.25 * (satisfaction <= 2)
    base = 0.01 + competitor + service
    treatment = np.array([NO_ACTION] * n_control + ["review_commission_rate"] * n_treated
                         + ["branch_manager_call"] * n_treated)
    true_effect = {"review_commission_rate": 0.5 * competitor, "branch_manager_call": 0.8 * service}
    p = base.copy()
    for action, effect in true_effect.items():
        p[treatment == action] -= effect[treatment == action]
    churned = (rng.random(n) < p).astype(int)
    return x, treatment, churned, true_effect


def test_the_learner_recovers_known_effects_on_a_hand_built_dataset() -> None:
    x, treatment, churned, true_effect = _hand_built()
    actions = ("review_commission_rate", "branch_manager_call")
    model, _, effects = fit_uplift(x, treatment, churned, NAMES, GROUPS, actions=actions, targets=HAND_BUILT,
                                   overrides={"control": {"n_estimators": 150}})
    assert effects["review_commission_rate"] == pytest.approx(0.5, abs=0.2)
    assert effects["branch_manager_call"] == pytest.approx(0.8, abs=0.2)
    predicted = predict_uplift(model, x, actions)
    for k, action in enumerate(actions):
        assert spearmanr(predicted[:, k], true_effect[action]).statistic > 0.8
    # Who benefits: a commission review helps the clients paying the most, a call the dissatisfied ones.
    high_rate, unhappy = x[:, 0] > 0.0006, x[:, 1] <= 2
    assert predicted[high_rate, 0].mean() > 3 * predicted[x[:, 0] < 0.0002, 0].mean()
    assert predicted[unhappy, 1].mean() > 3 * predicted[~unhappy, 1].mean()


def test_without_any_effect_the_learner_finds_none() -> None:
    x, treatment, _, _ = _hand_built(seed=4)
    rng = np.random.default_rng(5)
    base = 0.01 + 0.3 * np.clip((x[:, 0] - 0.0002) / 0.0006, 0, 1) + 0.25 * (x[:, 1] <= 2)
    churned = (rng.random(len(x)) < base).astype(int)  # the actions change nothing
    _, _, effects = fit_uplift(x, treatment, churned, NAMES, GROUPS, targets=HAND_BUILT,
                               actions=("review_commission_rate", "branch_manager_call"),
                               overrides={"control": {"n_estimators": 150}})
    assert max(effects.values()) < 0.25


def test_qini_is_highest_for_the_true_ranking_and_zero_for_a_constant() -> None:
    gains = np.array([0.0, 0.3, 0.0, 0.1, 0.0, 0.0])
    oracle = qini_from_gains(gains, gains)
    assert oracle > qini_from_gains(-gains, gains)
    assert qini_from_gains(np.zeros(6), gains) == pytest.approx(qini_from_gains(np.arange(6)[::-1], gains))
    assert oracle > 0


def test_a_campaign_whose_outcome_reaches_the_test_window_is_never_used() -> None:
    month_ends = list(pd.date_range("2024-01-31", periods=12, freq="ME"))
    campaigns = [Campaign(f"retention-{q}", pd.Timestamp(d) + pd.Timedelta(days=1), pd.Timestamp(d))
                 for q, d in (("Q1", "2024-03-31"), ("Q2", "2024-06-30"), ("Q3", "2024-09-30"))]
    train, validation, test = split_campaigns(campaigns, month_ends, test_months=3)
    assert test == tuple(month_ends[-3:])
    # Q3's 90 days (to 2024-12-29) reach into the test window starting 2024-10-31: left out.
    assert train == ("retention-Q1",) and validation == ("retention-Q2",)
    with pytest.raises(ValueError, match="at least 2"):
        split_campaigns(campaigns[1:], month_ends, test_months=3)


def test_campaign_rows_use_features_of_the_month_end_before_the_campaign_and_no_later(
        model_home: Settings) -> None:
    data = build_uplift_data(model_home.raw_dir, model_home.features_dir)
    used = [c for c in data.campaigns if c.tag in data.train + data.validation]
    assert used and all(c.as_of + pd.Timedelta(days=90) <= data.test_as_of[0] for c in used)
    assert all(c.as_of < c.date for c in data.campaigns)
    assert (data.frame["treatment"] != NO_ACTION).sum() > 0
    offline = pd.read_parquet(view_path(offline_dir(model_home.features_dir), "client_flow"))
    offline["as_of"] = pd.to_datetime(offline["as_of"])
    sample = data.frame.sample(300, random_state=1)[["client_id", "month_end", "outflow_90d"]]
    joined = sample.merge(offline[["client_id", "as_of", "outflow_90d"]],
                          left_on=["client_id", "month_end"], right_on=["client_id", "as_of"], suffixes=("", "_then"))
    assert len(joined) == len(sample), "every campaign row has the indicators of the month-end before it"
    assert np.allclose(joined["outflow_90d"], joined["outflow_90d_then"])


def test_the_uplift_champion_serves_every_action_through_onnx(model_home: Settings) -> None:
    reg = registry(model_home)
    version = reg.version(UPLIFT_MODEL, reg.alias_version(UPLIFT_MODEL, CHAMPION))
    assert float(version.tags["onnx_parity_max_abs_diff"]) <= 1e-5
    assert "test_qini" in version.metrics
    bundle = reg.bundle(UPLIFT_MODEL)
    actions = bundle.metadata["actions"]
    data = build_uplift_data(model_home.raw_dir, model_home.features_dir)
    features = data.frame[data.features].to_numpy(dtype=np.float32)[:200]
    scorer = OnnxScorer(bundle.onnx_bytes)
    effects = np.column_stack([scorer.predict(with_action(features, a))[:, 0] for a in range(len(actions))])
    assert effects.shape == (200, len(actions)) and np.isfinite(effects).all()
    assert effects.std(axis=0).max() > 0, "the effect differs between clients"
    # The frame-level function other code (the closed-loop simulation) scores with gives the same effects.
    frame = data.frame[data.features].iloc[:200]
    by_frame = action_effects(bundle, frame)
    assert list(by_frame.columns) == list(actions) and np.allclose(by_frame.to_numpy(), effects, atol=1e-6)


def test_what_each_action_addresses_is_read_from_the_action_catalogue() -> None:
    catalogue = load_ruleset().catalogue
    targets = action_targets()
    assert (targets["review_commission_rate"].cause, targets["review_commission_rate"].requires) == ("competitor", None)
    assert targets["review_commission_rate"].prior == catalogue.actions["review_commission_rate"].effect["competitor"]
    assert targets["review_commission_rate"].commission_cut == 0.35
    call = targets["broker_retention_call"]
    assert (call.cause, call.commission_cut) == ("service", None)
    assert (targets["resolve_open_complaints"].cause, targets["resolve_open_complaints"].requires) == (
        "service", "open_complaints")
    # A catalogue whose priors say otherwise changes what the model assumes: there is one definition.
    doc = catalogue.model_dump(mode="json")
    doc["actions"]["investor_education"]["effect"] = {"poor_trading": 0.01, "competitor": 0.2, "service": 0.0}
    edited = type(catalogue).model_validate(doc)
    assert action_targets(edited)["investor_education"] == ActionTarget("competitor", None, 0.2)


def test_a_commission_review_takes_away_the_share_of_the_rate_above_the_markets() -> None:
    review = ActionTarget("competitor", None, 0.35, commission_cut=0.35, commission_floor=0.0001)
    rates = np.array([0.0001, 0.0002, 0.0003, 0.0005, 0.0008])
    removed = overpayment_removed(rates, review)
    # At or below the market's rate nothing is overpaid; 0.0003 → 0.000195, below the market: all of it; 0.0005 →
    # 0.000325: 0.000175 of 0.0003 above; 0.0008 → 0.00052: 0.00028 of 0.0006.
    assert removed == pytest.approx([0.0, 0.0, 1.0, 0.175 / 0.3, 0.28 / 0.6])


def test_few_treated_clients_leave_an_actions_effect_near_the_catalogues_prior() -> None:
    rng = np.random.default_rng(11)
    probability = np.full(40_000, 0.10)
    addressed = np.full(40_000, 0.08)
    churned = rng.random(40_000) < probability - 0.75 * addressed  # the action removes 75% of the addressed risk
    # Thirty treated clients say little: the prior stands, where the campaign-only estimate lands anywhere.
    few = action_effect(churned[:30], probability[:30], addressed[:30], prior=0.25)
    assert abs(few - 0.25) < 0.15
    # Forty thousand say it clearly, whatever the prior.
    assert action_effect(churned, probability, addressed, prior=0.25) == pytest.approx(0.75, abs=0.08)
    assert action_effect(churned, probability, addressed) == pytest.approx(0.75, abs=0.08)
