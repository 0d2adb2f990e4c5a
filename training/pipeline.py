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


def registry(settings: Settings) -> Registry:
    return Registry(settings.tracking_uri, settings.mlflow_artifacts_dir)


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
        meta |= {"classes": fitted.extra["classes"]}
    return meta


def train(model: str, settings: Settings, progress: Callable[[str], None] = lambda _: None,
          overrides: dict | None = None) -> ModelVersion:
    """Train, check and register one model; returns the registered version (champion when it is the first)."""
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
