"""Fitting the client-month LightGBM models on time-based windows, with early stopping and held-out metrics.

Each model's spec names its fit function here (``training.fit:fit_churn`` ...); a fit function takes the
dataset and parameter overrides and returns a :class:`Fitted`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from model_registry.onnx_export import make_float32_exact
from model_registry.specs import model_spec
from training.datasets import Dataset, Windows, time_windows

BASE_PARAMS = {
    "n_estimators": 600,
    "learning_rate": 0.06,
    "num_leaves": 31,
    "min_child_samples": 200,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "reg_lambda": 1.0,
    "n_jobs": 2,
    "verbose": -1,
    "random_state": 7,
}
EARLY_STOPPING_ROUNDS = 40


@dataclass
class Fitted:
    """A fitted model, its windows, held-out metrics and test-window predictions."""

    model: object
    windows: Windows
    params: dict
    metrics: dict[str, float]
    test_features: np.ndarray
    test_labels: np.ndarray
    test_scores: np.ndarray
    test_rows: pd.DataFrame
    extra: dict = field(default_factory=dict)  # serving metadata the fit produced (calibration, classes)


def _masks(ds: Dataset, windows: Windows) -> tuple[pd.Series, pd.Series, pd.Series]:
    as_of = ds.frame["as_of"]
    return as_of.isin(windows.train), as_of.isin(windows.validation), as_of.isin(windows.test)


def split(ds: Dataset) -> Windows:
    spec = model_spec(ds.model)
    return time_windows(list(ds.frame["as_of"].unique()), test_months=spec.test_months,
                        validation_months=spec.validation_months)


def fit(ds: Dataset, overrides: dict | None = None) -> Fitted:
    """Fit the dataset's model with the function its spec names."""
    from training.specs import resolve

    spec = model_spec(ds.model)
    fitted = resolve(spec.fit)(ds, spec.params | (overrides or {}))
    # Same predictions for the float32 inputs the product uses, and an ONNX graph that matches them exactly.
    make_float32_exact(fitted.model)
    return fitted


def _early_stopping():
    import lightgbm

    return [lightgbm.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)]


def isotonic_calibration(scores: np.ndarray, labels: np.ndarray) -> dict[str, list[float]]:
    """Isotonic map from raw to calibrated probability, stored as breakpoints the API interpolates."""
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(scores, labels)
    return {"x": [float(v) for v in iso.X_thresholds_], "y": [float(v) for v in iso.y_thresholds_]}


def calibrate(scores: np.ndarray, calibration: dict[str, list[float]]) -> np.ndarray:
    return np.interp(scores, calibration["x"], calibration["y"])


def fit_churn(ds: Dataset, overrides: dict) -> Fitted:
    from lightgbm import LGBMClassifier
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    windows = split(ds)
    train, valid, test = _masks(ds, windows)
    y = ds.frame[ds.label].astype(int).to_numpy()
    params = BASE_PARAMS | overrides
    model = LGBMClassifier(**params)
    model.fit(ds.matrix(train), y[train], eval_X=(ds.matrix(valid),), eval_y=(y[valid],), eval_metric="auc",
              callbacks=_early_stopping())
    calibration = isotonic_calibration(model.predict_proba(ds.matrix(valid))[:, 1], y[valid])
    x_test = ds.matrix(test)
    raw = model.predict_proba(x_test)[:, 1]
    p = calibrate(raw, calibration)
    metrics = {
        "test_auc": roc_auc_score(y[test], raw),
        "test_average_precision": average_precision_score(y[test], p),
        "test_brier": brier_score_loss(y[test], p),
        "test_churn_rate": float(y[test].mean()),
        "test_rows": float(test.sum()),
        "train_rows": float(train.sum()),
        "best_iteration": float(model.best_iteration_ or params["n_estimators"]),
    }
    return Fitted(model, windows, params, metrics, x_test, y[test], p, ds.frame.loc[test, ["client_id", "as_of"]],
                  {"calibration": calibration})


def fit_value(ds: Dataset, overrides: dict) -> Fitted:
    from lightgbm import LGBMRegressor
    from scipy.stats import spearmanr

    windows = split(ds)
    train, valid, test = _masks(ds, windows)
    # Commission is heavy-tailed: learn log(1 + yuan), report in yuan.
    y = np.log1p(ds.frame[ds.label].to_numpy(dtype=float))
    params = BASE_PARAMS | overrides
    model = LGBMRegressor(**params)
    model.fit(ds.matrix(train), y[train], eval_X=(ds.matrix(valid),), eval_y=(y[valid],), eval_metric="l2",
              callbacks=_early_stopping())
    x_test = ds.matrix(test)
    predicted = model.predict(x_test)
    actual = ds.frame.loc[test, ds.label].to_numpy(dtype=float)
    order = np.argsort(-predicted)
    top = order[: max(1, len(order) // 10)]
    metrics = {
        "test_spearman": float(spearmanr(predicted, actual).statistic),
        "test_rmse_log": float(np.sqrt(np.mean((predicted - y[test]) ** 2))),
        "test_top_decile_commission_share": float(actual[top].sum() / max(actual.sum(), 1e-9)),
        "test_rows": float(test.sum()),
        "train_rows": float(train.sum()),
        "best_iteration": float(model.best_iteration_ or params["n_estimators"]),
    }
    return Fitted(model, windows, params, metrics, x_test, actual, np.expm1(predicted),
                  ds.frame.loc[test, ["client_id", "as_of"]])
