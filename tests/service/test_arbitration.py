"""Arbitration: suitability and eligibility before ranking, order by priority, the cap, and the contact policy."""

from __future__ import annotations

import datetime as dt

from rules.catalogue import Catalogue
from rules.model import load_ruleset
from rules.vocabulary import load_vocabulary
from service.arbitration import Arbiter
from service.contact_history import Contact
from service.experiments import CHAMPION, HOLDOUT

TODAY = dt.date(2026, 11, 30)
PRODUCTS = load_vocabulary().products


def catalogue(edit=None) -> Catalogue:
    doc = load_ruleset().catalogue.model_dump(mode="json")
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
    # competitor: review 0.4 × 0.35 × 10,000 − 200 = 1,200; call 0.4 × 0.15 × 10,000 − 20 = 580; research 39
    assert order == ["review_commission_rate", "broker_retention_call", "industry_research"]
    top = chosen[0]
    assert top["priority"] == 1200.0 and top["rank"] == 1
    assert top["score"] == {"churn_probability": 0.4, "effect": 0.35, "cause": "competitor",
                            "forward_value_yuan": 10_000.0, "expected_retained_value_yuan": 1400.0,
                            "business_lever": 1.0, "cost_yuan": 200.0}
    assert top["reason"] == ("priority 1,200.00 yuan = churn probability 0.400 × effect 0.35 (competitor) × "
                             "forward value 10,000.00 yuan × business lever 1 − cost 200.00 yuan")
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


def test_a_clients_uplift_replaces_the_prior_and_the_contact_policy_still_applies() -> None:
    arbiter = Arbiter(catalogue(), PRODUCTS, max_actions=5)
    uplift = {"broker_retention_call": 0.05, "review_commission_rate": 0.01, "branch_manager_call": 0.2}
    # declined 40 days ago: outside the 30-day contact count, inside the call's 60 days of suppression
    declined = [Contact(TODAY - dt.timedelta(days=40), "phone", "branch_manager_call", "declined")]
    chosen, withheld = arbiter.arbitrate(("broker_retention_call", "review_commission_rate", "branch_manager_call"),
                                         inputs(), CHAMPION, declined, TODAY, uplift=uplift)
    # call 0.05 × 10,000 − 20 = 480 ahead of the review 0.01 × 10,000 − 200 = −100, whatever the priors say
    assert [c["action"] for c in chosen] == ["broker_retention_call", "review_commission_rate"]
    assert chosen[0]["priority"] == 480.0
    assert chosen[0]["reason"].startswith("priority 480.00 yuan = fall of the churn probability 0.0500 (uplift)")
    assert {w["action"]: w["reason"] for w in withheld} == {"branch_manager_call": "suppressed"}
