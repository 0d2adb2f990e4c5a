"""Arbitration: suitability and eligibility before ranking, order by priority, the cap, and the contact policy."""

from __future__ import annotations

import datetime as dt

from rules.catalogue import Catalogue, ValueAtStake
from rules.model import load_ruleset
from rules.vocabulary import load_vocabulary
from service.arbitration import ActionEffects, Arbiter
from service.contact_history import Contact
from service.experiments import CHAMPION, HOLDOUT

TODAY = dt.date(2026, 11, 30)
PRODUCTS = load_vocabulary().products


def catalogue(edit=None, value_at_stake: str = "forward_commission") -> Catalogue:
    """The bundled catalogue, valuing a kept client at ``value_at_stake`` (the figures below are commission's)."""
    doc = load_ruleset().catalogue.model_dump(mode="json") | {"value_at_stake": value_at_stake}
    if edit is not None:
        edit(doc)
    return Catalogue.model_validate(doc)


def inputs(**overrides: object) -> dict[str, object]:
    return {"lifecycle_stage": "at_risk", "churn_probability": 0.4, "churn_cause": "competitor",
            "value_amount": 10_000.0, "commission_365d": 8_000.0, "stated_risk_level": 3,
            "questionnaire_expired": False, **overrides}


def ranked(arbiter: Arbiter, actions, contacts=(), arm=CHAMPION, **overrides):
    chosen, withheld = arbiter.arbitrate(tuple(actions), inputs(**overrides), arm, list(contacts), TODAY)
    return [c["action"] for c in chosen], {w["action"]: w["reason"] for w in withheld}, chosen


def test_actions_are_ranked_by_priority_with_their_components_in_words_and_numbers() -> None:
    arbiter = Arbiter(catalogue(), PRODUCTS, max_actions=5)
    order, _, chosen = ranked(arbiter, ["broker_retention_call", "review_commission_rate", "industry_research"])
    # competitor: review 0.4 × 0.35 × 10,000 − 200 = 1,200; call 0.4 × 0.12 × 10,000 − 20 = 460; research 39
    assert order == ["review_commission_rate", "broker_retention_call", "industry_research"]
    top = chosen[0]
    assert top["priority"] == 1200.0 and top["rank"] == 1
    assert top["score"] == {"churn_probability": 0.4, "effect": 0.35, "cause": "competitor", "uplift": None,
                            "effect_source": "catalogue_prior", "forward_value_yuan": 10_000.0,
                            "value_at_stake": "forward_commission", "value_at_stake_yuan": 10_000.0,
                            "expected_retained_value_yuan": 1400.0, "business_lever": 1.0, "cost_yuan": 200.0}
    assert top["reason"] == ("priority 1,200.00 yuan = churn probability 0.400 × effect 0.35 (competitor; catalogue "
                             "prior: no uplift model is served) × forward value 10,000.00 yuan × business lever 1 "
                             "− cost 200.00 yuan")
    assert [c["priority"] for c in chosen] == sorted((c["priority"] for c in chosen), reverse=True)


def test_at_most_n_actions_and_the_rest_are_said_to_be_beyond_the_cap() -> None:
    arbiter = Arbiter(catalogue(), PRODUCTS, max_actions=2)
    order, withheld, _ = ranked(arbiter, ["industry_research", "broker_retention_call", "review_commission_rate"])
    assert order == ["review_commission_rate", "broker_retention_call"]
    assert withheld == {"industry_research": "beyond_cap"}


def test_suitability_comes_before_ranking_so_an_unsuitable_offer_never_takes_a_place() -> None:
    def lucrative(doc: dict) -> None:  # STAR access would rank first by far if it were allowed
        doc["actions"]["star_market_access"]["business_lever"] = 1000.0

    arbiter = Arbiter(catalogue(lucrative), PRODUCTS, max_actions=1)
    order, withheld, _ = ranked(arbiter, ["star_market_access", "broker_retention_call"], stated_risk_level=3)
    assert order == ["broker_retention_call"] and withheld["star_market_access"] == "unsuitable"
    order, _, _ = ranked(arbiter, ["star_market_access", "broker_retention_call"], stated_risk_level=5)
    assert order == ["star_market_access"]
    order, withheld, _ = ranked(arbiter, ["bond_fund"], stated_risk_level=5, questionnaire_expired=True)
    assert order == [] and withheld == {"bond_fund": "unsuitable"}


def test_the_holdout_gets_no_retention_or_win_back_action_but_keeps_the_rest() -> None:
    arbiter = Arbiter(catalogue(), PRODUCTS, max_actions=5)
    order, withheld, _ = ranked(arbiter, ["broker_retention_call", "win_back_rate_offer", "industry_research"],
                                arm=HOLDOUT)
    assert order == ["industry_research"]
    assert withheld == {"broker_retention_call": "holdout", "win_back_rate_offer": "holdout"}


def test_at_most_k_contacts_per_channel_in_30_days() -> None:
    arbiter = Arbiter(catalogue(), PRODUCTS, max_actions=5)  # K = 2 in the bundled policy
    phone = [Contact(TODAY - dt.timedelta(days=3), "phone", None, "reached"),
             Contact(TODAY - dt.timedelta(days=20), "phone", None, "interested")]
    order, withheld, _ = ranked(arbiter, ["review_commission_rate", "broker_retention_call", "industry_research"],
                                phone)
    assert order == ["industry_research"]  # wechat is free
    assert withheld == {"review_commission_rate": "contact_cap", "broker_retention_call": "contact_cap"}
    # one phone contact left: only the best phone action gets it; older contacts and unanswered calls do not count
    older = [phone[0], Contact(TODAY - dt.timedelta(days=31), "phone", None, "reached"),
             Contact(TODAY - dt.timedelta(days=1), "phone", None, "no_answer")]
    order, withheld, _ = ranked(arbiter, ["review_commission_rate", "broker_retention_call"], older)
    assert order == ["review_commission_rate"] and withheld == {"broker_retention_call": "contact_cap"}


def test_no_repeat_within_the_suppression_period_after_a_decline() -> None:
    arbiter = Arbiter(catalogue(), PRODUCTS, max_actions=5)  # the retention call is suppressed for 30 days
    declined = [Contact(TODAY - dt.timedelta(days=29), "wechat", "broker_retention_call", "declined")]
    order, withheld, _ = ranked(arbiter, ["broker_retention_call", "investment_advisory_session"], declined)
    assert order == ["investment_advisory_session"] and withheld == {"broker_retention_call": "suppressed"}
    long_ago = [Contact(TODAY - dt.timedelta(days=30), "wechat", "broker_retention_call", "declined")]
    order, _, _ = ranked(arbiter, ["broker_retention_call"], long_ago)
    assert order == ["broker_retention_call"]
    other = [Contact(TODAY - dt.timedelta(days=2), "sms", "investor_education", "declined")]
    order, _, _ = ranked(arbiter, ["broker_retention_call"], other)
    assert order == ["broker_retention_call"]


def test_a_lost_client_is_valued_as_gone_unless_won_back() -> None:
    arbiter = Arbiter(catalogue(), PRODUCTS, max_actions=5)
    _, _, chosen = ranked(arbiter, ["win_back_rate_offer"], lifecycle_stage="lost", churn_probability=0.01,
                          value_amount=100.0, commission_365d=8_000.0)
    score = chosen[0]["score"]
    assert (score["churn_probability"], score["forward_value_yuan"]) == (1.0, 8_000.0)
    assert chosen[0]["priority"] == 1.0 * 0.15 * 8_000.0 - 150.0
    assert "probability the client stays gone" in chosen[0]["reason"]


def test_an_uplift_model_ranks_the_actions_it_covers_by_their_effect_on_this_client() -> None:
    arbiter = Arbiter(catalogue(), PRODUCTS, max_actions=5)
    # The priors rank the commission review first for a competitor-driven client; this client's estimated
    # effects say a call helps more and the review not at all.
    uplift = ActionEffects({"broker_retention_call": 0.05, "review_commission_rate": 0.0}, "retention_uplift", 3)
    chosen, _ = arbiter.arbitrate(("review_commission_rate", "broker_retention_call", "industry_research"),
                                  inputs(), CHAMPION, [], TODAY, uplift)
    assert [c["action"] for c in chosen] == ["broker_retention_call", "industry_research", "review_commission_rate"]
    call, research, review = chosen
    # call: 0.05 × 10,000 − 20 = 480; the review: 0 × 10,000 − 200 = −200; research keeps its prior: 39
    assert call["priority"] == 480.0 and review["priority"] == -200.0 and research["priority"] == 39.0
    assert call["score"]["effect_source"] == "uplift_model" and call["score"]["uplift"] == 0.05
    assert call["score"]["effect"] == 0.125  # the share of the client's 0.4 churn probability the call removes
    assert "estimated fall of the churn probability 0.0500 (retention_uplift v3)" in call["reason"]
    assert research["score"]["effect_source"] == "catalogue_prior" and research["score"]["uplift"] is None
    assert "the uplift model does not cover this action" in research["reason"]


def test_a_lost_client_is_ranked_by_the_priors_even_with_an_uplift_model() -> None:
    arbiter = Arbiter(catalogue(), PRODUCTS, max_actions=5)
    uplift = ActionEffects({"win_back_rate_offer": 0.9}, "retention_uplift", 3)
    chosen, _ = arbiter.arbitrate(("win_back_rate_offer",), inputs(lifecycle_stage="lost"), CHAMPION, [], TODAY,
                                  uplift)
    assert chosen[0]["score"]["effect_source"] == "catalogue_prior"
    assert "covers active clients, not lost ones" in chosen[0]["reason"]


def test_the_action_an_action_addresses_is_its_largest_prior() -> None:
    actions = catalogue().actions
    assert actions["review_commission_rate"].addressed_cause == "competitor"
    assert actions["broker_retention_call"].addressed_cause == "service"
    assert actions["investor_education"].addressed_cause == "poor_trading"
    assert actions["resolve_open_complaints"].requires == "open_complaints"


def test_the_bundled_catalogue_values_a_kept_client_at_the_assets_that_would_leave_with_it() -> None:
    assert load_ruleset().catalogue.value_at_stake == ValueAtStake.CLIENT_ASSETS


def test_valued_at_its_assets_a_client_gets_the_action_that_keeps_most_of_them_whatever_its_commission() -> None:
    arbiter = Arbiter(catalogue(value_at_stake="client_assets"), PRODUCTS, max_actions=5)
    # Commission 100 yuan a year: in commission terms the review's 200 yuan would sink it below the research mail.
    _, _, chosen = ranked(arbiter, ["broker_retention_call", "review_commission_rate", "industry_research"],
                          value_amount=100.0, total_assets=2_000_000.0)
    assert [c["action"] for c in chosen] == ["review_commission_rate", "broker_retention_call", "industry_research"]
    review = chosen[0]
    # 0.4 × 0.35 × 2,000,000 − 200
    assert review["priority"] == 279_800.0
    assert (review["score"]["value_at_stake"], review["score"]["value_at_stake_yuan"]) == ("client_assets",
                                                                                           2_000_000.0)
    assert review["score"]["forward_value_yuan"] == 100.0
    assert "client assets 2,000,000.00 yuan" in review["reason"]


def test_valued_at_its_assets_a_lost_client_is_worth_what_it_moved_out() -> None:
    arbiter = Arbiter(catalogue(value_at_stake="client_assets"), PRODUCTS, max_actions=5)
    _, _, chosen = ranked(arbiter, ["win_back_rate_offer"], lifecycle_stage="lost", total_assets=5_000.0,
                          outflow_365d=900_000.0)
    assert chosen[0]["score"]["value_at_stake_yuan"] == 900_000.0
    assert chosen[0]["priority"] == 1.0 * 0.15 * 900_000.0 - 150.0
