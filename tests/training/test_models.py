"""Models trained on an 18-month world: no leakage, ONNX parity, the promotion gate, sensible behaviour."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config import Settings
from features.indicators.compute import view_path
from features.raw.schema import RETENTION_ACTIONS
from features.store.feature_store import offline_dir
from model_registry.errors import PromotionRefusedError
from model_registry.onnx_export import OnnxScorer, make_float32_exact, parity_max_abs_diff, to_onnx
from model_registry.registry import CHALLENGER, CHAMPION
from model_registry.specs import model_spec
from training.datasets import build_dataset, time_windows
from training.fit import fit, split
from training.pipeline import registry, train
from training.promotion import promote


@pytest.fixture(scope="module")
def churn_data(model_home: Settings):
    return build_dataset("churn", model_home.raw_dir, model_home.features_dir)


def test_first_versions_are_champions_with_metrics_and_parity(model_home: Settings) -> None:
    reg = registry(model_home)
    for name, metric in (("churn", "test_auc"), ("value", "test_spearman"), ("risk_profile", "test_macro_f1")):
        champion = reg.version(name, reg.alias_version(name, CHAMPION))
        assert metric in champion.metrics
        assert float(champion.tags["onnx_parity_max_abs_diff"]) <= 1e-5
        assert champion.tags["feature_service"] == model_spec(name).feature_service
        bundle = reg.bundle(name)
        assert bundle.feature_names and bundle.onnx_bytes and bundle.booster_text
    assert reg.bundle("churn").metadata["calibration"]["x"]
    assert len(reg.bundle("value").metadata["percentiles"]) == 101


def test_training_rows_never_see_features_after_their_as_of_date(model_home: Settings, churn_data) -> None:
    offline = pd.read_parquet(view_path(offline_dir(model_home.features_dir), "client_flow"))
    offline["as_of"] = pd.to_datetime(offline["as_of"])
    sample = churn_data.frame.sample(300, random_state=1)[["client_id", "as_of", "outflow_90d", "inflow_30d"]]
    joined = sample.merge(offline, on=["client_id", "as_of"], suffixes=("", "_offline"))
    assert len(joined) == len(sample), "every training row comes from the indicators of its own as-of date"
    assert np.array_equal(joined["outflow_90d"], joined["outflow_90d_offline"])
    assert np.array_equal(joined["inflow_30d"], joined["inflow_30d_offline"])


def test_test_window_client_months_are_not_in_training(churn_data) -> None:
    windows = split(churn_data)
    assert set(windows.train).isdisjoint(windows.test) and set(windows.validation).isdisjoint(windows.test)
    assert max(windows.train) < min(windows.validation) < min(windows.test)
    with pytest.raises(ValueError, match="too few"):
        time_windows([pd.Timestamp("2024-01-31")])


def test_onnx_matches_lightgbm_on_the_test_window(churn_data) -> None:
    fitted = fit(churn_data, {"n_estimators": 60})
    onnx_bytes = to_onnx(fitted.model, len(churn_data.features))
    assert parity_max_abs_diff(fitted.model, onnx_bytes, fitted.test_features) <= 1e-5


@settings(max_examples=30, deadline=None)
@given(values=st.lists(st.floats(-1e6, 1e6, allow_nan=False, width=32), min_size=5, max_size=5))
def test_float32_exact_thresholds_keep_predictions(values) -> None:
    from lightgbm import LGBMRegressor

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5)).astype(np.float32) * 1000
    # Outputs on the scale of the product's models (log-yuan, probabilities), where float32 resolves 1e-5.
    model = LGBMRegressor(n_estimators=30, num_leaves=8, verbose=-1).fit(x, (x[:, 0] * 2 + x[:, 1]) / 1000)
    probe = np.vstack([x[:50], np.array(values, dtype=np.float32)])
    before = model.predict(probe)
    make_float32_exact(model)
    assert np.array_equal(model.predict(probe), before)
    assert np.max(np.abs(OnnxScorer(to_onnx(model, 5)).predict(probe)[:, 0] - before)) <= 1e-5


def test_the_gate_refuses_a_weakened_challenger_and_promotes_a_fair_one(model_home: Settings) -> None:
    reg = registry(model_home)
    champion = reg.alias_version("churn", CHAMPION)
    weak = train("churn", model_home, overrides={"n_estimators": 1, "num_leaves": 2, "learning_rate": 0.01})
    assert weak.aliases == (CHALLENGER,)
    with pytest.raises(PromotionRefusedError, match="worse than champion"):
        promote("churn", model_home)
    assert reg.alias_version("churn", CHAMPION) == champion
    fair = train("churn", model_home)
    result = promote("churn", model_home)
    assert result.promoted and reg.alias_version("churn", CHAMPION) == fair.version
    assert reg.alias_version("churn", CHALLENGER) is None


def _scores(model_home: Settings, name: str, frame: pd.DataFrame) -> np.ndarray:
    bundle = registry(model_home).bundle(name)
    return OnnxScorer(bundle.onnx_bytes).predict(frame[bundle.feature_names].to_numpy(dtype=np.float32))


def test_growing_outflows_raise_the_churn_probability(model_home: Settings, churn_data) -> None:
    frame = churn_data.frame[churn_data.frame["churned"] == 0].sample(400, random_state=2)
    leaving = frame.copy()
    assets = leaving["total_assets"].clip(lower=1_000)
    leaving["outflow_30d"] += 0.5 * assets
    leaving["outflow_90d"] += 0.7 * assets
    leaving["net_flow_90d"] -= 0.7 * assets
    leaving["outflow_share_90d"] = 0.7
    leaving["large_withdrawals_90d"] += 1
    before, after = _scores(model_home, "churn", frame)[:, 1], _scores(model_home, "churn", leaving)[:, 1]
    assert after.mean() > 1.5 * before.mean()
    assert (after > before).mean() > 0.8


def test_more_commission_history_means_more_value(model_home: Settings) -> None:
    ds = build_dataset("value", model_home.raw_dir, model_home.features_dir)
    frame = ds.frame.sample(400, random_state=3)
    richer = frame.copy()
    for column in ("commission_30d", "commission_90d", "commission_365d"):
        richer[column] = frame[column] * 3 + 500
    before, after = _scores(model_home, "value", frame)[:, 0], _scores(model_home, "value", richer)[:, 0]
    assert after.mean() > before.mean()
    assert (after >= before).mean() > 0.8


def test_evaluation_against_the_ground_truth_has_the_promised_shape(model_home: Settings) -> None:
    from typer.testing import CliRunner

    from cli.main import app
    from training.evaluation import evaluate

    report = evaluate(model_home)
    assert 0.5 < report["churn"]["auc"] <= report["churn"]["oracle_auc"] + 0.05
    assert 0.0 <= report["churn"]["cause_accuracy"] <= 1.0
    recall = report["churn"]["cause_recall"]
    assert recall and set(recall) <= {"poor_trading", "competitor", "service"}
    assert report["churn"]["cause_macro_recall"] == pytest.approx(np.mean(list(recall.values())))
    # The inputs' ceiling learns from the truth, so it reads at least about as much as the champion, never more than
    # the oracle by more than noise.
    assert 0.5 < report["churn"]["inputs_ceiling_auc"] <= report["churn"]["oracle_auc"] + 0.05
    assert sorted(report["churn"]["cause_ceiling"]) == ["cause_macro_recall", "cause_recall"]
    assert report["value"]["spearman"] > 0.5
    assert 0 < report["risk_profile"]["accuracy"] <= 1 and 0 < report["risk_profile"]["questionnaire_accuracy"] <= 1
    import json
    import os

    os.environ["CRM_HOME"] = str(model_home.home)
    from config import get_settings

    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["models", "evaluate", "--json"])
    finally:
        del os.environ["CRM_HOME"]
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert {k: sorted(v) for k, v in figures.items()} == {
        "churn": ["auc", "cause_accuracy", "cause_ceiling", "cause_macro_recall", "cause_recall", "inputs_ceiling_auc",
                  "largest_cause_guess", "oracle_auc"],
        "value": ["spearman"],
        "risk_profile": ["accuracy", "behaviour_ceiling_accuracy", "macro_f1", "questionnaire_accuracy"],
        "uplift": ["oracle_qini", "per_action", "qini"]}
    assert sorted(figures["risk_profile"]["macro_f1"]) == ["behaviour_ceiling", "champion", "questionnaire"]
    assert 0 < figures["risk_profile"]["behaviour_ceiling_accuracy"] <= 1
    assert set(figures["uplift"]["per_action"]) == set(RETENTION_ACTIONS)
    assert all(sorted(v) == ["oracle_qini", "qini"] for v in figures["uplift"]["per_action"].values())
    assert figures["uplift"]["qini"] <= figures["uplift"]["oracle_qini"]
