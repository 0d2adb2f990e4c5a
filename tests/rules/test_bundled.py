"""The bundled ruleset: valid, its golden cases pass, and its vocabulary matches what serving provides."""

from __future__ import annotations

import pytest

from features.indicators.compute import catalog
from rules.analysis import analyse, golden_cases
from rules.engine import build
from rules.model import load_ruleset, ruleset_from_canonical
from rules.vocabulary import load_vocabulary

BUNDLED = build(load_ruleset())
MODEL_OUTPUTS = {"churn_probability", "churn_band", "churn_cause", "value_amount", "value_percentile",
                 "risk_profile"}


def test_the_bundled_ruleset_has_no_findings() -> None:
    assert [f.describe() for f in analyse(BUNDLED)] == []


@pytest.mark.parametrize("table", BUNDLED.tables, ids=lambda t: t.id)
def test_golden_cases(table) -> None:
    assert table.spec.tests, f"table {table.id} has no golden cases"
    assert [f.describe() for f in golden_cases(table)] == []


def test_golden_case_failure_is_reported_with_the_rules_that_fired() -> None:
    canonical = load_ruleset().canonical()
    canonical["tables"][0]["tests"] = [{**canonical["tables"][0]["tests"][0], "expect": {"tier": "small"}}]
    [finding] = golden_cases(build(ruleset_from_canonical(canonical)).table("service_tier"))
    assert "expected {'tier': 'small'}, got {'tier': 'premier'}" in finding.message
    assert finding.rules == ("TIER-PREMIER-ASSETS",)


def test_every_indicator_term_is_an_indicator_of_that_view_with_that_type() -> None:
    indicators = {i.name: i for i in catalog()}
    views = {i.name: i.family.value for i in catalog()}
    types = {"float64": "number", "int64": "integer", "string": "string", "bool": "boolean"}
    for term, ref in load_vocabulary().indicator_sources().items():
        view, name = ref.split(":")
        assert name in indicators, f"{term}: no indicator {name}"
        assert views[name] == view, f"{term}: {name} is in {views[name]}, not {view}"
        assert types[indicators[name].type] == load_vocabulary().terms[term].type, term


def test_every_model_term_is_a_model_output() -> None:
    assert set(load_vocabulary().model_sources().values()) <= MODEL_OUTPUTS


def test_every_vocabulary_default_fits_its_term() -> None:
    BUNDLED.check_inputs(load_vocabulary().defaults())
