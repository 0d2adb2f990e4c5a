"""The evaluator on the bundled ruleset: chained tables, the trace and bad inputs."""

from __future__ import annotations

import math

import pytest

from rules.engine import Ruleset, build, compile_ruleset
from rules.errors import HitPolicyViolation, InputError, RuleFileError
from rules.findings import Kind
from rules.model import load_ruleset, ruleset_from_canonical
from rules.vocabulary import load_vocabulary
from tests.rules._factories import make_table


@pytest.fixture(scope="module")
def bundled() -> Ruleset:
    return build(load_ruleset())


def client(**values: object) -> dict:
    """A client's rule inputs: the vocabulary's conservative defaults with some values changed."""
    return {**load_vocabulary().defaults(), **values}


def test_a_large_client_lured_by_a_competitor(bundled: Ruleset) -> None:
    decision = bundled.evaluate(client(total_assets=1_500_000.0, churn_band="high", churn_cause="competitor",
                                       days_since_last_contact=120, value_percentile=60.0))
    assert decision.tier == "large"
    assert decision.package == "one_to_one_advisor"  # the package table read the tier decided before it
    assert {"review_commission_rate", "broker_retention_call"} <= set(decision.actions)
    assert {"valuable_client_not_contacted_90d", "valuable_client_at_risk"} <= set(decision.alerts)
    assert "service_tier/TIER-LARGE-ASSETS" in decision.fired_rules


def test_the_trace_shows_each_table_its_rules_and_the_values_seen(bundled: Ruleset) -> None:
    decision = bundled.evaluate(client(total_assets=6_000_000.0))
    trace = {t.table: t for t in decision.trace}
    assert list(trace) == [t.id for t in bundled.tables]
    assert trace["service_tier"].fired == ("TIER-PREMIER-ASSETS",)
    assert trace["service_tier"].inputs["total_assets"] == 6_000_000.0
    assert trace["service_package"].inputs == {"tier": "premier", "churn_band": "low"}
    assert decision.as_dict()["trace"][1]["result"] == {"package": "one_to_one_advisor"}


def test_products_are_never_offered_above_the_stated_level(bundled: Ruleset) -> None:
    ratings = load_vocabulary().products
    for level in range(0, 6):
        for expired in (False, True):
            for profile in ("conservative", "balanced", "aggressive"):
                decision = bundled.evaluate(client(stated_risk_level=level, questionnaire_expired=expired,
                                                   risk_profile=profile, total_assets=9e6))
                offered = [a for a in decision.actions if a in ratings]
                assert all(ratings[p] <= level for p in offered), (level, offered)
                assert not (expired and offered)


@pytest.mark.parametrize(("change", "message"), [
    ({"total_assets": None}, "total_assets"),
    ({"total_assets": "a lot"}, "total_assets: 'a lot' is not a number"),
    ({"churn_band": "extreme"}, "churn_band: 'extreme' is not one of low, medium, high"),
    ({"stated_risk_level": 2.5}, "stated_risk_level"),
    ({"questionnaire_expired": "no"}, "questionnaire_expired"),
    ({"value_percentile": math.nan}, "NaN"),
])
def test_bad_inputs_are_named(bundled: Ruleset, change: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        bundled.evaluate(client(**change))


def test_a_missing_input_is_named(bundled: Ruleset) -> None:
    values = client()
    del values["churn_cause"]
    with pytest.raises(InputError, match="churn_cause: missing"):
        bundled.evaluate(values)


def test_unique_violation_at_run_time_names_the_rules() -> None:
    table = make_table("UNIQUE", ["amount"], [({"amount": ">= 0"}, "a"), ({"amount": "< 10"}, "b")])
    with pytest.raises(HitPolicyViolation, match="R1, R2"):
        table.run({"amount": 5.0})


def test_an_unknown_input_names_itself_table_and_all() -> None:
    canonical = load_ruleset().canonical()
    canonical["tables"][0]["inputs"] = [*canonical["tables"][0]["inputs"], "favourite_colour"]
    ruleset, findings = compile_ruleset(ruleset_from_canonical(canonical))
    assert ruleset is None
    assert any(f.table == "service_tier" and "favourite_colour" in f.message for f in findings)
    with pytest.raises(RuleFileError, match="favourite_colour"):
        build(ruleset_from_canonical(canonical))


def test_a_bad_entry_names_table_and_rule() -> None:
    canonical = load_ruleset().canonical()
    canonical["tables"][0]["rules"][2]["when"]["total_assets"] = "[5_000_000..1_000_000]"
    _, findings = compile_ruleset(ruleset_from_canonical(canonical))
    assert [(f.kind, f.table, f.rules) for f in findings] == [(Kind.ENTRY, "service_tier", ("TIER-LARGE-ASSETS",))]


def test_an_integer_written_as_a_float_is_accepted(bundled: Ruleset) -> None:
    assert bundled.evaluate(client(stated_risk_level=5.0, questionnaire_expired=False, risk_profile="aggressive",
                                   total_assets=9e6)).actions[-1] == "star_market_access"
