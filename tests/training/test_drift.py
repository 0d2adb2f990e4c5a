"""Drift of the champions: PSI on hand-built distributions, a world that moved trips the bands, one that did not
stays quiet, and the report reaches MLflow, the monitoring file and the CLI."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from config import Settings, get_settings
from features.indicators.compute import compute_indicators
from features.store.feature_store import apply, offline_dir
from features.synthetic.world import WorldConfig, generate_world
from training.drift import band, drift_report, psi
from training.pipeline import registry, train

# -------------------------------------------------------------------------------------------- PSI by hand


def test_psi_of_a_sample_against_itself_is_zero() -> None:
    values = np.random.default_rng(1).lognormal(size=5_000)
    assert psi(values, values) == pytest.approx(0.0, abs=1e-12)


def test_psi_of_two_category_mixes_follows_the_formula() -> None:
    reference = ["a"] * 50 + ["b"] * 50
    current = ["a"] * 80 + ["b"] * 20
    expected = (0.8 - 0.5) * math.log(0.8 / 0.5) + (0.2 - 0.5) * math.log(0.2 / 0.5)
    assert psi(reference, current) == pytest.approx(expected)
    assert band(expected) == "act"


def test_psi_cuts_numbers_at_the_reference_deciles() -> None:
    reference = np.arange(1_000, dtype=float)  # each decile holds 10 %
    # Half the current sample in the lowest decile, the rest spread evenly over the other nine.
    current = np.concatenate([np.full(500, 5.0), np.linspace(100, 999, 500)])
    shares = np.array([0.5] + [0.5 / 9] * 9)
    expected = float(np.sum((shares - 0.1) * np.log(shares / 0.1)))
    assert psi(reference, current) == pytest.approx(expected, rel=0.02)


def test_a_small_shift_is_watch_and_sampling_noise_is_stable() -> None:
    rng = np.random.default_rng(2)
    reference = rng.normal(size=20_000)
    assert band(psi(reference, rng.normal(size=20_000))) == "stable"
    assert band(psi(reference, rng.normal(0.4, 1.0, size=20_000))) == "watch"
    assert band(psi(reference, rng.normal(1.0, 1.0, size=20_000))) == "act"


def test_missing_values_are_a_bin_of_their_own() -> None:
    reference = pd.Series(np.arange(1_000, dtype=float))
    current = reference.copy()
    current[:300] = np.nan
    assert band(psi(reference, current)) == "act"
    with pytest.raises(ValueError, match="no values"):
        psi(pd.Series([np.nan, np.nan]), reference)


def test_band_limits() -> None:
    assert [band(v) for v in (0.0, 0.0999, 0.1, 0.25, 0.2501)] == ["stable", "stable", "watch", "watch", "act"]


# ------------------------------------------------------------------------------------------ worlds


def _bull_market(raw_dir: Path, months: int = 3, factor: int = 4) -> pd.Timestamp:
    """A bull regime in the last ``months`` months: every client trades ``factor`` times the shares (commission
    at the same rate, still at least 5 yuan; stamp duty in proportion). Returns the first shifted day."""
    trades = pd.read_parquet(raw_dir / "trades.parquet")
    dates = pd.to_datetime(trades["trade_date"])
    start = (dates.max() - pd.DateOffset(months=months)).normalize()
    late = (dates > start).to_numpy()
    trades.loc[late, "quantity"] *= factor
    trades.loc[late, "amount"] *= factor
    trades.loc[late, "stamp_duty"] *= factor
    trades.loc[late, "commission"] = np.maximum(5.0, trades.loc[late, "commission"] * factor)
    trades.to_parquet(raw_dir / "trades.parquet", index=False)
    return start


@pytest.fixture(scope="module")
def stable_report(model_home: Settings):
    return drift_report(model_home)


@pytest.fixture(scope="module")
def bull_report(model_home: Settings, tmp_path_factory: pytest.TempPathFactory):
    """The model world with a bull market in its last three months, scored by the same champions."""
    home = tmp_path_factory.mktemp("bull_world")
    shutil.copytree(model_home.raw_dir, home / "raw")
    _bull_market(home / "raw")
    settings = Settings(home=home, mlflow_tracking_uri=model_home.tracking_uri)
    compute_indicators(settings.raw_dir, offline_dir(settings.features_dir))
    apply(settings.features_dir)
    return drift_report(settings, log=False)


def test_an_unchanged_world_stays_out_of_the_act_band(stable_report) -> None:
    assert {d.model for d in stable_report} == {"churn", "value", "risk_profile"}
    for d in stable_report:
        assert d.band == d.score_band != "act", (d.model, d.score_psi)
        assert d.reference.startswith("test window") and d.reference_rows > d.current_rows > 0


@pytest.mark.slow
def test_an_unchanged_24_month_world_trips_nothing(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The demo world's shape and seed (24 months, seed 7) at an eighth of its size: the value model's training
    window is the first eight month-ends, whose 365-day indicators are short (against it the value score read
    0.27-0.29, "act"); against the test window no champion's score reaches "act"."""
    home = tmp_path_factory.mktemp("unchanged_24_months")
    settings = Settings(home=home)
    generate_world(WorldConfig(clients=2_500, months=24, seed=7), settings.raw_dir, settings.ground_truth_dir)
    compute_indicators(settings.raw_dir, offline_dir(settings.features_dir))
    apply(settings.features_dir)
    for model in ("churn", "value", "risk_profile"):
        train(model, settings)
    report = drift_report(settings, log=False)
    assert {d.model for d in report} == {"churn", "value", "risk_profile"}
    for d in report:
        assert d.reference.startswith("test window")
        assert d.band != "act", (d.model, d.score_psi, d.reference)


def test_a_bull_market_trips_the_bands(bull_report, stable_report) -> None:
    bull = {d.model: d for d in bull_report}
    stable = {d.model: d for d in stable_report}
    # The value model is the one that reads trading activity: its score moves into "act".
    assert bull["value"].band == "act", (bull["value"].score_psi, stable["value"].score_psi)
    for model in ("churn", "value"):
        assert bull[model].indicators["commission_90d"] > stable[model].indicators["commission_90d"] + 0.25
        assert bull[model].indicator_bands["act"] > stable[model].indicator_bands["act"]
    # Indicators that do not depend on trading did not move.
    assert bull["risk_profile"].indicators["total_assets"] == pytest.approx(
        stable["risk_profile"].indicators["total_assets"])


def test_realised_performance_sits_next_to_the_test_window(stable_report) -> None:
    for d in stable_report:
        p = d.performance
        assert p is not None and p.test_value is not None and p.latest_value is not None
        assert p.latest_rows > 0
    churn = next(d for d in stable_report if d.model == "churn")
    # Nothing changed since training: the latest labelled window is the test window and the AUC agrees with the
    # one measured at training (the served ONNX graph scores before calibration, which only adds ties).
    assert churn.performance.latest_window == churn.performance.test_window
    assert churn.performance.latest_value == pytest.approx(churn.performance.test_value, abs=0.02)


def test_the_report_is_logged_on_the_models_run_and_written_for_the_metrics(model_home: Settings,
                                                                            stable_report) -> None:
    reg = registry(model_home)
    for d in stable_report:
        step = int(d.current.removeprefix("as of ").replace("-", ""))
        history = reg.client.get_metric_history(d.run_id, "drift_psi_score")
        assert any(m.step == step and m.value == pytest.approx(d.score_psi) for m in history)
        names = {a.path for a in reg.client.list_artifacts(d.run_id, "plots")}
        assert "plots/drift_psi.png" in names
    written = json.loads(model_home.drift_report_path.read_text())
    assert [w["model"] for w in written] == [d.model for d in stable_report]
    assert all(w["band"] in ("stable", "watch", "act") for w in written)


def test_the_cli_prints_json_and_writes_html(model_home: Settings, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cli.main import app

    os.environ["CRM_HOME"] = str(model_home.home)
    get_settings.cache_clear()
    try:
        page = tmp_path / "drift.html"
        result = CliRunner().invoke(app, ["models", "drift", "--json", "--html", str(page)])
        bad = CliRunner().invoke(app, ["models", "drift", "--to", "2030-01-31"])
        not_a_date = CliRunner().invoke(app, ["models", "drift", "--from", "last week"])
    finally:
        del os.environ["CRM_HOME"]
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {r["model"] for r in report} == {"churn", "value", "risk_profile"}
    assert "PSI" in page.read_text() and "data:image/png;base64," in page.read_text()
    assert bad.exit_code == 1 and "no indicators at 2030-01-31" in bad.output
    assert not_a_date.exit_code == 2 and "not a date" in not_a_date.output
