"""Experiment arms: stable across workers and restarts, with the configured shares; report intervals."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd

from service.experiment_report import report
from service.experiments import CHALLENGER, CHAMPION, HOLDOUT, ArmPlan

CLIENTS = [f"C{k:07d}" for k in range(10_000)]
SCRIPT = ("import json, sys; from service.experiments import ArmPlan; "
          "p = ArmPlan('nba-2026', 0.05, 0.10); "
          "print(json.dumps([p.arm(f'C{k:07d}') for k in range(10_000)]))")


def test_arms_are_the_same_in_two_worker_processes_and_after_a_restart() -> None:
    import json

    first, second = (json.loads(subprocess.run([sys.executable, "-c", SCRIPT], check=True, capture_output=True,
                                               text=True).stdout) for _ in range(2))
    here = [ArmPlan("nba-2026", 0.05, 0.10).arm(c) for c in CLIENTS]
    assert first == second == here


def test_shares_are_within_tolerance_over_10000_clients() -> None:
    arms = pd.Series([ArmPlan("nba-2026", 0.05, 0.10).arm(c) for c in CLIENTS]).value_counts(normalize=True)
    # binomial standard errors at n = 10,000: 0.22 points for 5 %, 0.30 for 10 %; allow three of them
    assert abs(arms[HOLDOUT] - 0.05) < 0.0066
    assert abs(arms[CHALLENGER] - 0.10) < 0.009
    assert abs(arms[CHAMPION] - 0.85) < 0.011


def test_a_new_salt_draws_new_arms_and_a_zero_share_draws_none() -> None:
    a = [ArmPlan("one", 0.5).arm(c) for c in CLIENTS[:2000]]
    b = [ArmPlan("two", 0.5).arm(c) for c in CLIENTS[:2000]]
    assert 0.4 < np.mean([x != y for x, y in zip(a, b, strict=True)]) < 0.6
    assert {ArmPlan("one", 0.0).arm(c) for c in CLIENTS[:2000]} == {CHAMPION}


def _observed(rng: np.random.Generator, n: int) -> pd.DataFrame:
    arm = np.where(rng.random(n) < 0.5, HOLDOUT, CHAMPION)
    churned = rng.random(n) < np.where(arm == HOLDOUT, 0.12, 0.09)  # the policy removes 3 points of churn
    kept = rng.normal(np.where(arm == HOLDOUT, 0.90, 0.95), 0.2)  # and keeps 5 points more of the assets
    return pd.DataFrame({"client_id": [f"C{k}" for k in range(n)], "arm": arm, "recommended": 1,
                         "churned": churned.astype(float), "assets_kept": kept})


def test_the_report_intervals_cover_the_true_difference_95_times_in_100() -> None:
    rng = np.random.default_rng(3)
    covered = {"churn_90d": 0, "assets_kept": 0}
    runs = 300
    for _ in range(runs):
        vs = report(_observed(rng, 4_000))["arms"][CHAMPION]["vs_holdout"]
        covered["churn_90d"] += vs["churn_90d"]["ci95"][0] <= -0.03 <= vs["churn_90d"]["ci95"][1]
        covered["assets_kept"] += vs["assets_kept"]["ci95"][0] <= 0.05 <= vs["assets_kept"]["ci95"][1]
    # 95 % nominal; with 300 runs the share lies within about ±3.8 points (three standard errors)
    assert 0.91 <= covered["churn_90d"] / runs <= 0.99
    assert 0.91 <= covered["assets_kept"] / runs <= 0.99


def test_the_report_gives_each_arm_its_figures_and_the_holdout_no_difference() -> None:
    figures = report(_observed(np.random.default_rng(1), 2_000), {"C1": 2, "C2": 1})
    assert set(figures["arms"]) == {HOLDOUT, CHAMPION}
    assert "vs_holdout" not in figures["arms"][HOLDOUT]
    assert sum(f["clients"] for f in figures["arms"].values()) == 2_000
    assert sum(f["actions_delivered"] for f in figures["arms"].values()) == 3
