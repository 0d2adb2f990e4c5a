"""At a small scale the generated world already looks like a real brokerage."""

from __future__ import annotations

from pathlib import Path

from features.profile import build_profile


def test_realism_figures_are_inside_their_ranges(realism_world: Path) -> None:
    profile = build_profile(realism_world / "raw", realism_world / "ground_truth")
    figures = {f.name: f for f in profile.figures}
    assert set(figures) == {
        "annual_churn_rate_active", "top5pct_asset_share", "top20pct_commission_share",
        "median_trades_per_month_active", "true_churn_probability_auc", "churn_cause_share_competitor",
        "churn_cause_share_service", "churn_cause_share_poor_trading",
    }
    outside = {name: f.value for name, f in figures.items() if not f.within}
    assert not outside, f"realism figures out of range: {outside}"


def test_churn_has_all_three_causes(realism_world: Path) -> None:
    from features.synthetic.ground_truth import read_truth_table

    causes = read_truth_table(realism_world / "ground_truth", "churn_events")["cause"].value_counts(normalize=True)
    assert set(causes.index) == {"poor_trading", "competitor", "service"}
    assert causes.min() > 0.05


def test_profile_without_ground_truth_leaves_out_the_truth_figure(realism_world: Path, tmp_path: Path) -> None:
    profile = build_profile(realism_world / "raw", tmp_path / "no_truth")
    assert "true_churn_probability_auc" not in {f.name for f in profile.figures}
    assert profile.cause_mix is None
