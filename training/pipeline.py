"""Train one model end to end: dataset through Feast, fit, plots, ONNX parity, MLflow registration."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from config import Settings
from features.model_features import CHURN_CAUSE_GROUPS
from model_registry.explain import ChurnExplainer
from model_registry.registry import ModelVersion, Registry
from training import plots
from training.datasets import MODELS, build_dataset, serving_frame
from training.fit import Fitted, fit

CHURN_BANDS = {"low": 0.05, "medium": 0.15}  # calibrated probability below low → low, below medium → medium
VALUE_PERCENTILES = 101
UPLIFT_MODEL = "retention_uplift"


def registry(settings: Settings) -> Registry:
    return Registry(settings.tracking_uri, settings.mlflow_artifacts_dir)


def train_uplift(settings: Settings, progress: Callable[[str], None] = lambda _: None,
                 overrides: dict | None = None) -> ModelVersion:
    """The retention uplift model from the randomized campaigns: fit, plots, ONNX parity, MLflow registration."""
    from features.raw.schema import RETENTION_ACTIONS
    from training import uplift

    progress(f"{UPLIFT_MODEL}: building the campaigns' rows through Feast ({uplift.SERVICE})")
    data = uplift.build_uplift_data(settings.raw_dir, settings.features_dir)
    treated = int((data.frame["treatment"] != uplift.NO_ACTION).sum())
    progress(f"{UPLIFT_MODEL}: {len(data.campaigns)} campaigns, {treated:,} treated and "
             f"{len(data.frame) - treated:,} control clients × {len(data.features)} indicators; fitting the X-learner")
    fitted = uplift.fit(data, overrides)
    progress(f"{UPLIFT_MODEL}: " + ", ".join(f"{k}={v:.4g}" for k, v in fitted.metrics.items()
                                             if k in ("test_qini", "test_mean_predicted_uplift")))
    windows = uplift.describe_windows(data)
    valid = data.rows(data.validation)[data.features].to_numpy(dtype=np.float32)
    parity_rows = np.vstack([uplift.with_action(valid[:3_000], a) for a in range(len(RETENTION_ACTIONS))])
    with tempfile.TemporaryDirectory() as folder:
        plot_dir = Path(folder)
        plots.uplift_plots(plot_dir, fitted.validation, RETENTION_ACTIONS)
        plots.importance_plots(plot_dir, fitted.model, fitted.inputs, None)
        progress(f"{UPLIFT_MODEL}: converting to ONNX, checking parity, registering in MLflow")
        version = registry(settings).register(
            UPLIFT_MODEL, fitted.model,
            test_features=parity_rows,
            signature=[{"name": name, "type": "float32"} for name in fitted.inputs],
            params={f"{part}.{k}": v for part, values in fitted.params.items() for k, v in values.items()}
            | {"feature_service": uplift.SERVICE},
            metrics=fitted.metrics,
            tags={"feature_service": uplift.SERVICE, **windows},
            serving_metadata={"model": UPLIFT_MODEL, "feature_service": uplift.SERVICE, **windows,
                              "actions": list(RETENTION_ACTIONS), "action_inputs": uplift.action_inputs(),
                              "output": "uplift", "unit": "fall of the 90-day churn probability"},
            plots_dir=plot_dir,
        )
    progress(f"{UPLIFT_MODEL}: registered version {version.version} as {', '.join(version.aliases) or 'no alias'}")
    return version


def serving_metadata(model: str, fitted: Fitted, settings: Settings, features: list[str]) -> dict:
    spec = MODELS[model]
    meta: dict = {"model": model, "feature_service": spec["service"], **fitted.windows.describe()}
    if model == "churn":
        meta |= {"calibration": fitted.extra["calibration"], "cause_groups": CHURN_CAUSE_GROUPS,
                 "bands": CHURN_BANDS}
    elif model == "value":
        # The distribution of predicted value over today's clients turns an amount into a percentile.
        population = serving_frame(settings.features_dir, spec["service"])
        predicted = np.expm1(fitted.model.predict(population[features].to_numpy(dtype=np.float32)))
        meta |= {"output": "expm1", "unit": "yuan",
                 "percentiles": [float(v) for v in np.percentile(predicted, np.linspace(0, 100, VALUE_PERCENTILES))]}
    else:
        # Classes, and what the suitability explanation compares a client with.
        meta |= {key: fitted.extra[key] for key in ("classes", "mismatch_evidence") if key in fitted.extra}
    return meta


def train(model: str, settings: Settings, progress: Callable[[str], None] = lambda _: None,
          overrides: dict | None = None) -> ModelVersion:
    """Train, check and register one model; returns the registered version (champion when it is the first)."""
    if model == UPLIFT_MODEL:
        return train_uplift(settings, progress, overrides)
    spec = MODELS[model]
    progress(f"{model}: building the training set through Feast ({spec['service']})")
    ds = build_dataset(model, settings.raw_dir, settings.features_dir)
    progress(f"{model}: {len(ds.frame):,} client-months × {len(ds.features)} indicators; fitting LightGBM")
    fitted = fit(ds, overrides)
    progress(f"{model}: " + ", ".join(f"{k}={v:.4g}" for k, v in fitted.metrics.items() if k.startswith("test_")))
    with tempfile.TemporaryDirectory() as folder:
        plot_dir = Path(folder)
        if model == "churn":
            plots.classification_plots(plot_dir, fitted.test_labels, fitted.test_scores)
            explainer = ChurnExplainer(fitted.model.booster_.model_to_string(), ds.features, CHURN_CAUSE_GROUPS)
            sample = fitted.test_features[:20_000]
            plots.importance_plots(plot_dir, fitted.model, ds.features, explainer.contributions(sample))
        elif model == "value":
            plots.lift_plot(plot_dir, fitted.test_labels, fitted.test_scores, "commission")
            plots.importance_plots(plot_dir, fitted.model, ds.features, None)
        else:
            plots.importance_plots(plot_dir, fitted.model, ds.features, None)
        progress(f"{model}: converting to ONNX, checking parity, registering in MLflow")
        version = registry(settings).register(
            model, fitted.model,
            test_features=fitted.test_features,
            signature=[{"name": name, "type": "float32"} for name in ds.features],
            params=fitted.params | {"feature_service": spec["service"]},
            metrics=fitted.metrics,
            tags={"feature_service": spec["service"], **fitted.windows.describe()},
            serving_metadata=serving_metadata(model, fitted, settings, ds.features),
            plots_dir=plot_dir,
        )
    progress(f"{model}: registered version {version.version} as {', '.join(version.aliases) or 'no alias'}")
    return version
