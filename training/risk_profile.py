"""The risk-profile model: a client's risk class read from trading behaviour, learnt from questionnaires.

Questionnaires are noisy (careless or strategic answers, a whole level off for some clients), and the three
classes are ordered: conservative (C1–C2) < balanced (C3) < aggressive (C4–C5). A classifier trained on the three
classes learns how often each class is *stated* for a behaviour, and since the outer classes span two levels and
the middle one only one, a noisy questionnaire is stated outside C3 more often than its true class is: such a
classifier reads too few clients as balanced. This model treats the level as an ordered score instead:

1. LightGBM regresses the stated level (1–5) on behaviour with a Huber loss, so a questionnaire that sustained
   behaviour contradicts (a large residual, month after month) weighs linearly, not quadratically; a questionnaire
   older than the regulator's validity is down-weighted too. Mean-zero answer noise averages out of the fitted
   level, so the level estimates what the client's behaviour says his level is. The level may only rise with
   the indicators a risk officer reads as riskier (growth-board, ST and new-stock shares, volatility, how fully
   the account is invested): monotone constraints. A misstatement stays with the client, month after month, so
   the model is early-stopped on clients it never trained on (a fifth of them, by client id): validated on the
   same clients' later months, it would be rewarded for learning their misstatements instead of their behaviour.
2. The class is the fitted level cut where the levels split the classes (2.5: C2|C3, 3.5: C3|C4).
3. The probabilities are an adjacent-category ordinal logit on the fitted level ``m``:
   ``log(p_balanced / p_conservative) = (m - 2.5) / s`` and ``log(p_aggressive / p_balanced) = (m - 3.5) / s``,
   whose most probable class is exactly the cut of step 2; the scale ``s`` is fitted on the validation window.
   The logit is written as an ordinary LightGBM multiclass model (per round, a one-leaf tree of value 0 and the
   regression tree scaled by 1/s and 2/s), so its ONNX export, parity check, registry and serving are those of
   any classifier.

The questionnaire level is the label only, never an input.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from features.indicators.client_category import QUESTIONNAIRE_VALID_DAYS
from features.labels import RISK_CLASSES
from training.datasets import Dataset, build_dataset
from training.fit import BASE_PARAMS, EARLY_STOPPING_ROUNDS, Fitted, _masks, split

RISK_LEVEL_CUTS = (2.5, 3.5)  # fitted level below 2.5: C1–C2, up to 3.5: C3, above: C4–C5
EXPIRED_QUESTIONNAIRE_WEIGHT = 0.5
HUBER_DELTA = 1.0  # residuals beyond one level (a misstatement) count linearly
REGRESSION_PARAMS = {"objective": "huber", "alpha": HUBER_DELTA, "n_estimators": 400, "learning_rate": 0.1,
                     "num_leaves": 31, "min_child_samples": 400}
# What a risk officer takes as never less risky, all else equal: the fitted level may only rise with these.
RISKIER_WHEN_HIGHER = (
    "growth_board_share", "st_share", "holdings_volatility_90d", "growth_board_buy_share_365d", "st_buy_share_365d",
    "new_stock_buy_share_365d", "sub_new_stock_buy_share_365d", "securitisation_ratio_avg_12m",
    "full_investment_share_12m", "buy_cash_commitment_avg_365d", "bought_volatility_avg_365d",
)
VALIDATION_CLIENT_PERCENT = 20  # clients held out of training, to validate on
EVIDENCE_MIN_CORRELATION = 0.1  # indicators whose rank correlation with the fitted level is weaker say little
EVIDENCE_TOP = 3


def validation_clients(client_ids: pd.Series) -> np.ndarray:
    """Rows of the clients kept out of training to validate on: a fixed share of clients chosen by a hash of the
    client id (the same clients whatever the order of the rows or the as-of dates)."""
    buckets = pd.util.hash_pandas_object(client_ids.astype(str), index=False).to_numpy() % 100
    return buckets < VALIDATION_CLIENT_PERCENT


def questionnaire_weights(age_days: np.ndarray) -> np.ndarray:
    """Training weight of each row: 1, or ``EXPIRED_QUESTIONNAIRE_WEIGHT`` for a questionnaire past its validity."""
    age = np.asarray(age_days, dtype=float)
    return np.where(age > QUESTIONNAIRE_VALID_DAYS, EXPIRED_QUESTIONNAIRE_WEIGHT, 1.0)


def class_of_level(level: np.ndarray) -> np.ndarray:
    """Class index (0 conservative, 1 balanced, 2 aggressive) of a fitted or stated level."""
    return np.digitize(np.asarray(level, dtype=float), RISK_LEVEL_CUTS)


def ordinal_probabilities(level: np.ndarray, scale: float) -> np.ndarray:
    """[N, 3] class probabilities of the adjacent-category logit on the fitted level."""
    level = np.asarray(level, dtype=float)
    raw = np.column_stack([np.zeros_like(level), (level - RISK_LEVEL_CUTS[0]) / scale,
                           (2 * level - RISK_LEVEL_CUTS[0] - RISK_LEVEL_CUTS[1]) / scale])
    raw -= raw.max(axis=1, keepdims=True)
    p = np.exp(raw)
    return p / p.sum(axis=1, keepdims=True)


def fit_scale(level: np.ndarray, stated_class: np.ndarray) -> float:
    """The logit's scale that best predicts the stated classes (log loss) on held-out rows."""
    scales = np.geomspace(0.05, 5.0, 60)
    rows = np.arange(len(level))
    losses = [-np.mean(np.log(np.clip(ordinal_probabilities(level, s)[rows, stated_class], 1e-12, None)))
              for s in scales]
    return float(scales[int(np.argmin(losses))])


_ZERO_TREE = "\n".join(["num_leaves=1", "num_cat=0", "split_feature=", "split_gain=", "threshold=", "decision_type=",
                        "left_child=", "right_child=", "leaf_value=0", "leaf_weight=", "leaf_count=0",
                        "internal_value=", "internal_weight=", "internal_count=", "is_linear=0", "shrinkage=1"])


def _tree_blocks(text: str) -> tuple[str, list[str], str]:
    start = text.index("Tree=0\n")
    end = text.index("end of trees")
    blocks = re.split(r"(?m)^Tree=\d+\n", text[start:end])[1:]
    return text[:start], [b.rstrip("\n") for b in blocks], text[end:]


def _scaled_tree(block: str, factor: float, offset: float) -> str:
    """A tree block with its leaf values times ``factor`` plus ``offset`` (internal values scaled alike)."""
    out = []
    for line in block.splitlines():
        key, _, values = line.partition("=")
        if key in ("leaf_value", "internal_value") and values:
            numbers = np.array(values.split(), dtype=np.float64) * factor + (offset if key == "leaf_value" else 0.0)
            line = key + "=" + " ".join(repr(float(v)) for v in numbers)
        out.append(line)
    return "\n".join(out)


def ordinal_booster_text(regression_text: str, scale: float) -> str:
    """The LightGBM multiclass model text of the adjacent-category logit over a regression model's level."""
    header, trees, footer = _tree_blocks(regression_text)
    header_lines = []
    for line in header.splitlines():
        if line.startswith("tree_sizes="):
            continue  # byte offsets of the original trees; without them LightGBM reads the trees in order
        if line.startswith("num_class="):
            line = f"num_class={len(RISK_CLASSES)}"
        elif line.startswith("num_tree_per_iteration="):
            line = f"num_tree_per_iteration={len(RISK_CLASSES)}"
        elif line.startswith("objective="):
            line = f"objective=multiclass num_class:{len(RISK_CLASSES)}"
        header_lines.append(line)
    low, high = RISK_LEVEL_CUTS
    blocks = []
    for i, tree in enumerate(trees):
        first = i == 0
        # The conservative class is the reference (raw score 0): a one-leaf tree per round.
        blocks.append(f"Tree={3 * i}\n{_ZERO_TREE}")
        for k, (factor, offset) in enumerate(((1 / scale, -low / scale), (2 / scale, -(low + high) / scale)),
                                             start=1):
            blocks.append(f"Tree={3 * i + k}\n" + _scaled_tree(tree, factor, offset if first else 0.0))
    return "\n".join(header_lines) + "\n\n" + "\n\n".join(blocks) + "\n\n\n" + footer


def ordinal_classifier(regressor, scale: float, n_features: int):
    """An ``LGBMClassifier`` (classes 0, 1, 2) whose booster is the ordinal logit over ``regressor``'s level."""
    import lightgbm
    from lightgbm import LGBMClassifier

    # A classifier fitted on three rows sets up scikit-learn's fitted state; its booster is then replaced.
    shell = LGBMClassifier(objective="multiclass", n_estimators=1, min_child_samples=1, verbose=-1)
    shell.fit(np.zeros((3, n_features), dtype=np.float32), np.array([0, 1, 2]))
    shell._Booster = lightgbm.Booster(model_str=ordinal_booster_text(regressor.booster_.model_to_string(), scale))
    shell._best_iteration = None
    shell._n_features = n_features
    return shell


def fit_level_regressor(x_train: np.ndarray, level_train: np.ndarray, weight_train: np.ndarray,
                        x_valid: np.ndarray, level_valid: np.ndarray, weight_valid: np.ndarray,
                        params: dict, early_stopping_rounds: int):
    """LightGBM regression of the stated level, early-stopped on the validation window."""
    import lightgbm
    from lightgbm import LGBMRegressor

    model = LGBMRegressor(**params)
    model.fit(x_train, level_train, sample_weight=weight_train, eval_X=(x_valid,), eval_y=(level_valid,),
              eval_sample_weight=[weight_valid], eval_metric="huber",
              callbacks=[lightgbm.early_stopping(early_stopping_rounds, verbose=False)])
    return model


def mismatch_evidence_reference(features: pd.DataFrame, level: np.ndarray) -> dict:
    """What the suitability explanation compares a client with: for every indicator that moves with the fitted
    level (rank correlation at least ``EVIDENCE_MIN_CORRELATION`` in size), its direction and its median and
    quartile spread among the clients the model reads in each class."""
    from scipy.stats import spearmanr

    classes = class_of_level(level)
    reference: dict[str, dict] = {}
    for name in features.columns:
        values = features[name].to_numpy(dtype=float)
        if np.nanstd(values) == 0:
            continue
        rho = float(spearmanr(values, level).statistic)
        if not np.isfinite(rho) or abs(rho) < EVIDENCE_MIN_CORRELATION:
            continue
        q1, q3 = np.nanpercentile(values, [25, 75])
        medians = {cls: float(np.nanmedian(values[classes == k])) if (classes == k).any() else None
                   for k, cls in enumerate(RISK_CLASSES)}
        reference[name] = {"direction": 1 if rho > 0 else -1, "correlation": round(rho, 4),
                           "spread": float(q3 - q1) or float(np.nanstd(values)), "class_medians": medians}
    return reference


def fit_risk_profile(ds: Dataset, overrides: dict | None = None) -> Fitted:
    """Fit the ordinal risk-profile model on the training window, early-stopped on validation; metrics on the
    test window against the questionnaire (the only class an observable test has)."""
    from sklearn.metrics import accuracy_score, f1_score

    overrides = overrides or {}
    windows = split(ds)
    train, valid, test = _masks(ds, windows)
    # A client's questionnaire and habits change slowly: every other training month carries the same signal
    # at half the cost.
    train = train & ds.frame["as_of"].isin(windows.train[-1::-2])
    # A misstatement is the client's own and lasts as long as his questionnaire: validated on the same clients'
    # later months, the model is rewarded for learning each client's misstatement. It is validated (early
    # stopping, the logit's scale) on clients it never trained on, so it stops when it stops reading behaviour.
    held_out = validation_clients(ds.frame["client_id"])
    train, valid = train & ~held_out, valid & held_out
    level = ds.frame["risk_level"].to_numpy(dtype=float)
    stated = ds.frame[ds.label].map({c: i for i, c in enumerate(RISK_CLASSES)}).to_numpy(dtype=int)
    weight = questionnaire_weights(ds.frame["questionnaire_age_days"].to_numpy())
    params = BASE_PARAMS | REGRESSION_PARAMS | {
        "monotone_constraints": [int(name in RISKIER_WHEN_HIGHER) for name in ds.features]} | overrides
    regressor = fit_level_regressor(ds.matrix(train), level[train], weight[train], ds.matrix(valid), level[valid],
                                    weight[valid], params, EARLY_STOPPING_ROUNDS)
    scale = fit_scale(regressor.predict(ds.matrix(valid)), stated[valid])
    model = ordinal_classifier(regressor, scale, len(ds.features))
    x_test = ds.matrix(test)
    probabilities = model.predict_proba(x_test)
    predicted = probabilities.argmax(axis=1)
    train_level = regressor.predict(ds.matrix(train))
    reference = mismatch_evidence_reference(ds.frame.loc[train, ds.features].reset_index(drop=True), train_level)
    metrics = {
        "test_macro_f1": float(f1_score(stated[test], predicted, average="macro")),
        "test_accuracy_vs_questionnaire": float(accuracy_score(stated[test], predicted)),
        "test_level_mae": float(np.mean(np.abs(regressor.predict(x_test) - level[test]))),
        "ordinal_scale": scale,
        "test_rows": float(test.sum()),
        "train_rows": float(train.sum()),
        "best_iteration": float(regressor.best_iteration_ or params["n_estimators"]),
    }
    return Fitted(model, windows, params | {"ordinal_scale": scale, "level_cuts": list(RISK_LEVEL_CUTS)}, metrics,
                  x_test, stated[test], probabilities, ds.frame.loc[test, ["client_id", "as_of"]],
                  {"classes": list(RISK_CLASSES), "mismatch_evidence": reference})


def gate_rows(spec, settings) -> tuple[pd.DataFrame, str]:
    """The rows the promotion gate compares versions on: the test window's rows of the clients held out of
    training. A version that trained on a client has learnt his questionnaire, misstatement included, and would
    be judged on its memory; no version trained this way has seen these clients."""
    ds = build_dataset(spec.name, settings.raw_dir, settings.features_dir)
    rows = ds.frame["as_of"].isin(split(ds).test).to_numpy() & validation_clients(ds.frame["client_id"])
    return ds.frame[rows], ds.label
