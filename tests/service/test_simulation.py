"""Impact simulation over a trained world: the migration matrix adds up and sample clients really changed."""

from __future__ import annotations

import pytest

from config import Settings
from model_registry.registry import Registry
from rules.engine import build
from rules.model import load_ruleset, ruleset_from_canonical
from rules.vocabulary import load_vocabulary
from service.scoring import Models
from service.simulation import Population, load_population, simulate


@pytest.fixture(scope="module")
def models(model_home: Settings) -> Models:
    return Models.load(Registry(model_home.tracking_uri, model_home.mlflow_artifacts_dir), threads=0)


@pytest.fixture(scope="module")
def population(model_home: Settings, models: Models) -> Population:
    return load_population(model_home.features_dir, model_home.home / "scores", models, load_vocabulary())


def lower_premier_threshold():
    canonical = load_ruleset().canonical()
    canonical["tables"][0]["rules"][0]["when"]["total_assets"] = ">= 1_000_000"
    return build(ruleset_from_canonical(canonical))


def test_population_inputs_fit_the_vocabulary(population: Population) -> None:
    active = build(load_ruleset())
    assert len(population.inputs) == len(population.client_ids) > 1_000
    for values in population.inputs[:200]:
        active.check_inputs(values)
    assert {v["churn_cause"] for v in population.inputs} <= {"poor_trading", "competitor", "service"}


def test_a_lower_premier_threshold_only_moves_clients_up_to_premier(population: Population) -> None:
    active, candidate = build(load_ruleset()), lower_premier_threshold()
    report = simulate(active, candidate, population)
    matrix = report.tier_migration
    assert sum(sum(row.values()) for row in matrix.values()) == report.clients == len(population.client_ids)
    moved = {(f, t): n for f, row in matrix.items() for t, n in row.items() if f != t and n}
    assert moved and all(t == "premier" and f == "large" for f, t in moved)
    assert report.clients_changed >= sum(moved.values())
    index = dict(zip(population.client_ids, population.inputs, strict=True))
    for client in report.samples["tier large → premier"]:
        assert active.evaluate(index[client]).tier == "large"
        assert candidate.evaluate(index[client]).tier == "premier"


def test_the_same_ruleset_changes_nothing_and_scores_are_reused(population: Population, models: Models,
                                                               model_home: Settings) -> None:
    active = build(load_ruleset())
    report = simulate(active, active, population)
    assert report.clients_changed == 0 and report.samples == {}
    assert all(c["active"] == c["candidate"] for c in report.actions.values())
    again = load_population(model_home.features_dir, model_home.home / "scores", models, load_vocabulary())
    assert again.scores_cached and again.inputs == population.inputs
