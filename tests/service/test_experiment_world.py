"""The experiment report on a generated world where an action plan was applied to a random half of the clients:
its interval recovers the true effect.

The world draws every client's random numbers from streams of its own, so generating it again without the plan
gives each treated client's outcome had it not been treated. The true effect of the plan on the report's own
measures (90-day churn, assets kept) is then the mean, over the treated clients the report observes, of the
outcome with the plan minus the outcome without it — and the report, which sees only the world with the plan and
compares the treated half (champion) with the other half (holdout), must cover it with its 95 % interval.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.synthetic.ground_truth import read_truth_table
from features.synthetic.world import WorldConfig, generate_world
from service.experiment_report import observe, report
from service.experiments import CHAMPION, HOLDOUT

WORLD = WorldConfig(clients=10_000, months=9, seed=7)
START = dt.date(2024, 3, 31)  # the month-end the arms are drawn at; the plan acts on the next trading day
ACTION = "review_commission_rate"


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, pd.DataFrame]:
    home = tmp_path_factory.mktemp("experiment_world")
    clients = [f"C{k:07d}" for k in range(1, WORLD.clients + 1)]
    arms = np.where(np.random.default_rng(5).random(len(clients)) < 0.5, CHAMPION, HOLDOUT)
    plan = pd.DataFrame({"client_id": [c for c, a in zip(clients, arms, strict=True) if a == CHAMPION],
                         "action": ACTION, "date": pd.Timestamp(START + dt.timedelta(days=1))})
    generate_world(WORLD, home / "with" / "raw", home / "with" / "truth", actions=plan)
    generate_world(WORLD, home / "without" / "raw", home / "without" / "truth")
    assignments = pd.DataFrame({"client_id": clients, "arm": arms, "start": START, "recommended": 0})
    return home / "with", home / "without", assignments


def test_the_report_recovers_the_true_effect_of_a_plan_applied_to_a_random_half(worlds) -> None:
    with_plan, without_plan, assignments = worlds
    observed = observe(assignments, with_plan / "raw")
    counterfactual = observe(assignments, without_plan / "raw")
    both = observed.merge(counterfactual[["client_id", "churned", "assets_kept"]], on="client_id",
                          suffixes=("", "_without"))
    treated = both[(both["arm"] == CHAMPION) & both["churned"].notna()]
    true_churn = float((treated["churned"] - treated["churned_without"]).mean())
    true_kept = float((treated["assets_kept"] - treated["assets_kept_without"]).mean())
    figures = report(observed)["arms"]
    vs = figures[CHAMPION]["vs_holdout"]
    assert figures[CHAMPION]["clients_observed"] > 3_000 and figures[HOLDOUT]["clients_observed"] > 3_000
    assert true_churn < 0 and true_kept > 0  # the plan keeps clients and their assets
    lo, hi = vs["churn_90d"]["ci95"]
    assert lo <= true_churn <= hi, (true_churn, vs["churn_90d"])
    assert hi < 0  # and the report can tell: the interval excludes no effect
    lo, hi = vs["assets_kept"]["ci95"]
    assert lo <= true_kept <= hi, (true_kept, vs["assets_kept"])
    # The world's own truth agrees on the direction: the action lowered the treated clients' churn probability.
    effects = read_truth_table(with_plan / "truth", "action_effects")
    planned = effects[(effects["action"] == ACTION) & (effects["campaign"] == "plan")]
    assert len(planned) > 3_000
    assert (planned["churn_probability_90d_with"] - planned["churn_probability_90d_without"]).mean() < 0
