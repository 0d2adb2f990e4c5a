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
from model_registry.specs import Explanation, ModelSpec, Output, model_spec
from training import plots
from training.datasets import build_dataset, serving_frame
from training.fit import Fitted, fit
from training.specs import resolve

CHURN_BANDS = {"low": 0.05, "medium": 0.15}  # calibrated probability below low → low, below medium → medium
VALUE_PERCENTILES = 101


def registry(settings: Settings) -> Registry:
    return Registry(settings.tracking_uri, settings.mlflow_artifacts_dir)


def serving_metadata(spec: ModelSpec, fitted: Fitted, settings: Settings, features: list[str]) -> dict:
    """What serving needs beside the graph, by what the model's output means and how it is explained."""
    meta: dict = {"model": spec.name, "feature_service": spec.feature_service, **fitted.windows.describe()}
    meta |= fitted.extra
    if spec.output == Output.CALIBRATED_PROBABILITY:
        meta |= {"bands": CHURN_BANDS}
    elif spec.output == Output.LOG_AMOUNT:
        # The distribution of predicted value over today's clients turns an amount into a percentile.
        population = serving_frame(settings.features_dir, spec.feature_service)
        predicted = np.expm1(fitted.model.predict(population[features].to_numpy(dtype=np.float32)))
        meta |= {"output": "expm1", "unit": "yuan",
                 "percentiles": [float(v) for v in np.percentile(predicted, np.linspace(0, 100, VALUE_PERCENTILES))]}
    if spec.explanation == Explanation.CHURN_CAUSES:
        meta |= {"cause_groups": CHURN_CAUSE_GROUPS}
    return meta


def _plots(spec: ModelSpec, plot_dir: Path, fitted: Fitted, features: list[str]) -> None:
    if spec.output in (Output.CALIBRATED_PROBABILITY, Output.PROBABILITY):
        plots.classification_plots(plot_dir, fitted.test_labels, fitted.test_scores)
    elif spec.output == Output.LOG_AMOUNT:
        plots.lift_plot(plot_dir, fitted.test_labels, fitted.test_scores, spec.label.split("_")[0])
    contributions = None
    if spec.explanation == Explanation.CHURN_CAUSES:
        explainer = ChurnExplainer(fitted.model.booster_.model_to_string(), features, CHURN_CAUSE_GROUPS)
        contributions = explainer.contributions(fitted.test_features[:20_000])
    plots.importance_plots(plot_dir, fitted.model, features, contributions)


def train(model: str, settings: Settings, progress: Callable[[str], None] = lambda _: None,
          overrides: dict | None = None) -> ModelVersion:
    """Train, check and register one model; returns the registered version (champion when it is the first).

    A spec with its own ``train`` function (a model trained on other rows than client-months) runs that."""
    spec = model_spec(model)
    if spec.train is not None:
        return resolve(spec.train)(spec, settings, progress, overrides)
    model = spec.name
    progress(f"{model}: building the training set through Feast ({spec.feature_service})")
    ds = build_dataset(model, settings.raw_dir, settings.features_dir)
    progress(f"{model}: {len(ds.frame):,} client-months × {len(ds.features)} indicators; fitting LightGBM")
    fitted = fit(ds, overrides)
    progress(f"{model}: " + ", ".join(f"{k}={v:.4g}" for k, v in fitted.metrics.items() if k.startswith("test_")))
    with tempfile.TemporaryDirectory() as folder:
        plot_dir = Path(folder)
        _plots(spec, plot_dir, fitted, ds.features)
        progress(f"{model}: converting to ONNX, checking parity, registering in MLflow")
        version = registry(settings).register(
            model, fitted.model,
            test_features=fitted.test_features,
            signature=[{"name": name, "type": "float32"} for name in ds.features],
            params=fitted.params | {"feature_service": spec.feature_service},
            metrics=fitted.metrics,
            tags={"feature_service": spec.feature_service, **fitted.windows.describe()},
            serving_metadata=serving_metadata(spec, fitted, settings, ds.features),
            plots_dir=plot_dir,
        )
    progress(f"{model}: registered version {version.version} as {', '.join(version.aliases) or 'no alias'}")
    return version
