"""Judging the champions against the synthetic world's hidden truth, on each model's test window.

This is the only training code allowed to read the ground truth (an import-linter contract): models learn from
observable data, and this module says how close they come to the best possible.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from config import Settings
from features.labels import RISK_CLASSES
from features.metrics import auc
from features.synthetic.ground_truth import read_truth_table
from model_registry.explain import CAUSES, ChurnExplainer
from model_registry.onnx_export import OnnxScorer
from model_registry.registry import CHAMPION, ServingBundle
from model_registry.specs import MODEL_SPECS
from training.datasets import Dataset, build_dataset
from training.fit import BASE_PARAMS, EARLY_STOPPING_ROUNDS, split
from training.pipeline import registry
from training.specs import resolve

# The questionnaire maps levels 1 + 4 × appetite (rounded) to classes: C1–C2, C3, C4–C5.
TRUE_RISK_CUTS = (0.375, 0.625)


def true_risk_class(appetite: np.ndarray) -> np.ndarray:
    return np.digitize(appetite, TRUE_RISK_CUTS)


def _test_rows(model: str, settings: Settings) -> pd.DataFrame:
    """The test window's rows (features and observable label) of a model, as in training."""
    ds = build_dataset(model, settings.raw_dir, settings.features_dir)
    return ds.frame[ds.frame["as_of"].isin(split(ds).test)].reset_index(drop=True)


def cause_figures(predicted: np.ndarray, true: np.ndarray) -> dict:
    """How well the likely causes match the true ones: accuracy, recall per cause and its macro mean, and the
    same for the trivial guess of the largest cause (accuracy alone rewards that guess)."""
    if not len(true):
        return {"cause_accuracy": None, "cause_recall": {}, "cause_macro_recall": None,
                "largest_cause_guess": None}
    present = [cause for cause in CAUSES if (true == cause).any()]
    recall = {cause: float((predicted[true == cause] == cause).mean()) for cause in present}
    largest = max(present, key=lambda cause: int((true == cause).sum()))
    return {
        "cause_accuracy": float((predicted == true).mean()),
        "cause_recall": recall,
        "cause_macro_recall": float(np.mean(list(recall.values()))),
        # Always answering the most frequent cause: its accuracy is that cause's share, its macro recall 1/3.
        "largest_cause_guess": {"cause": largest, "cause_accuracy": float((true == largest).mean()),
                                "cause_macro_recall": 1.0 / len(present)},
    }


def _churn_starts(rows: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """The rows (their index) whose client truly started to churn within 90 days of the as-of date, with the
    cause."""
    started = rows[["client_id", "as_of"]].reset_index().merge(
        events[["client_id", "churn_started_on", "cause"]], on="client_id")
    return started[(started["churn_started_on"] > started["as_of"])
                   & (started["churn_started_on"] <= started["as_of"] + pd.Timedelta(days=90))]


def evaluate_churn(bundle: ServingBundle, settings: Settings) -> dict:
    ds = build_dataset("churn", settings.raw_dir, settings.features_dir)
    windows = split(ds)
    truth = read_truth_table(settings.ground_truth_dir, "churn_probabilities")
    truth = truth.rename(columns={"month_end": "as_of"})
    truth["as_of"] = pd.to_datetime(truth["as_of"])
    frame = ds.frame.merge(truth[["client_id", "as_of", "true_churn_probability_90d"]], on=["client_id", "as_of"],
                           how="left")
    test = frame["as_of"].isin(windows.test).to_numpy()
    rows = frame[test].reset_index(drop=True)
    features = rows[bundle.feature_names].to_numpy(dtype=np.float32)
    scores = OnnxScorer(bundle.onnx_bytes).predict(features)[:, 1]
    known = rows["true_churn_probability_90d"].notna().to_numpy()
    churned = rows["churned"].to_numpy()[known]
    # Causes, among clients who truly started to churn within 90 days of the as-of date.
    events = read_truth_table(settings.ground_truth_dir, "churn_events")
    events["churn_started_on"] = pd.to_datetime(events["churn_started_on"])
    started = _churn_starts(rows, events)
    explainer = ChurnExplainer(bundle.booster_text, bundle.feature_names, bundle.metadata["cause_groups"])
    predicted = explainer.likely_causes(features[started["index"].to_numpy()])
    ceiling = churn_ceiling(frame, windows, bundle.feature_names, events)
    return {
        "auc": auc(scores[known], churned),
        "oracle_auc": auc(rows["true_churn_probability_90d"].to_numpy()[known], churned),
        "inputs_ceiling_auc": auc(ceiling["probability"][test][known], churned),
        **cause_figures(np.array(CAUSES)[predicted], started["cause"].to_numpy()),
        "cause_ceiling": {key: value for key, value in cause_figures(ceiling["cause"], ceiling["true_cause"]).items()
                          if key in ("cause_recall", "cause_macro_recall")},
        "test_rows": int(known.sum()),
        "true_churners": len(started),
    }


def churn_ceiling(frame: pd.DataFrame, windows, feature_names: list[str], events: pd.DataFrame) -> dict:
    """The best a model can read from the churn model's inputs, learnt from what no brokerage has: a LightGBM
    regressor of the world's true 90-day churn probability, and a classifier of the true causes of the clients who
    started to churn (each cause's probability divided by its share, so that every cause counts alike in the macro
    recall), trained and stopped on the champion's windows. Hidden traits (how frail a client is, how much it minds
    fees or service) are what keeps even these below the oracle. Never registered."""
    import lightgbm
    from lightgbm import LGBMClassifier, LGBMRegressor

    as_of = frame["as_of"]
    train, valid = as_of.isin(windows.train).to_numpy(), as_of.isin(windows.validation).to_numpy()
    test = as_of.isin(windows.test).to_numpy()
    x = frame[feature_names].to_numpy(dtype=np.float32)
    truth = frame["true_churn_probability_90d"].to_numpy()
    known = ~np.isnan(truth)
    stop = [lightgbm.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)]
    regressor = LGBMRegressor(**BASE_PARAMS | {"learning_rate": 0.1, "n_estimators": 400})
    # Every other training month-end from the latest back: the probability is a smooth target, half the months
    # teach it as well at half the time (the causes, far fewer rows, use every month).
    every_other = as_of.isin(windows.train[-1::-2]).to_numpy()
    fit_rows, stop_rows = every_other & known, valid & known
    regressor.fit(x[fit_rows], truth[fit_rows], eval_X=(x[stop_rows],), eval_y=(truth[stop_rows],), callbacks=stop)
    started = _churn_starts(frame, events)
    index = started["index"].to_numpy()
    label = started["cause"].map({c: k for k, c in enumerate(CAUSES)}).to_numpy()
    fit_rows, stop_rows, test_rows = train[index], valid[index], test[index]  # the churners' rows
    classifier = LGBMClassifier(**BASE_PARAMS | {"objective": "multiclass", "num_class": len(CAUSES),
                                                 "learning_rate": 0.05, "n_estimators": 800, "min_child_samples": 50})
    classifier.fit(x[index][fit_rows], label[fit_rows], eval_X=(x[index][stop_rows],), eval_y=(label[stop_rows],),
                   callbacks=stop)
    share = np.bincount(label[fit_rows], minlength=len(CAUSES)) / max(int(fit_rows.sum()), 1)
    balanced = classifier.predict_proba(x[index][test_rows]) / np.maximum(share, 1e-9)
    return {"probability": regressor.predict(x), "cause": np.array(CAUSES)[balanced.argmax(axis=1)],
            "true_cause": started["cause"].to_numpy()[test_rows]}


def evaluate_value(bundle: ServingBundle, settings: Settings) -> dict:
    from scipy.stats import spearmanr

    rows = _test_rows("value", settings)
    predicted = OnnxScorer(bundle.onnx_bytes).predict(rows[bundle.feature_names].to_numpy(dtype=np.float32))[:, 0]
    return {"spearman": float(spearmanr(predicted, rows["commission_next_12m"]).statistic), "test_rows": len(rows)}


def behaviour_ceiling(ds: Dataset, feature_names: list[str], true_class: np.ndarray) -> np.ndarray:
    """Test-window predictions of the best a model can read from these inputs: a LightGBM classifier with the
    champion's inputs, trained and tested on the same windows, but on the true class. Never registered."""
    import lightgbm
    from lightgbm import LGBMClassifier

    windows = split(ds)
    as_of = ds.frame["as_of"]
    train = as_of.isin(windows.train[-1::-2]).to_numpy()
    valid, test = as_of.isin(windows.validation).to_numpy(), as_of.isin(windows.test).to_numpy()
    x = ds.frame[feature_names].to_numpy(dtype=np.float32)
    model = LGBMClassifier(**BASE_PARAMS | {"objective": "multiclass", "learning_rate": 0.1, "n_estimators": 400})
    model.fit(x[train], true_class[train], eval_X=(x[valid],), eval_y=(true_class[valid],),
              eval_metric="multi_logloss", callbacks=[lightgbm.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)])
    return model.predict_proba(x[test]).argmax(axis=1)


def evaluate_risk(bundle: ServingBundle, settings: Settings) -> dict:
    """Accuracy and macro F1 against the true class of the champion, the questionnaire and the behaviour ceiling
    on the test window."""
    from sklearn.metrics import f1_score

    service = bundle.metadata.get("feature_service")
    ds = build_dataset("risk_profile", settings.raw_dir, settings.features_dir, service)
    traits = read_truth_table(settings.ground_truth_dir, "client_traits")[["client_id", "risk_appetite"]]
    frame = ds.frame.merge(traits, on="client_id", how="inner")
    ds = Dataset(ds.model, ds.service, frame, ds.features, ds.label)
    truth_all = true_risk_class(frame["risk_appetite"].to_numpy())
    test = frame["as_of"].isin(split(ds).test).to_numpy()
    rows, truth = frame[test], truth_all[test]
    probabilities = OnnxScorer(bundle.onnx_bytes).predict(rows[bundle.feature_names].to_numpy(dtype=np.float32))
    predicted = probabilities.argmax(axis=1)
    stated = rows["risk_class"].map({c: i for i, c in enumerate(RISK_CLASSES)}).to_numpy()
    ceiling = behaviour_ceiling(ds, bundle.feature_names, truth_all)

    def macro_f1(guess: np.ndarray) -> float:
        return float(f1_score(truth, guess, average="macro", labels=[0, 1, 2]))

    return {
        "accuracy": float((predicted == truth).mean()),
        "questionnaire_accuracy": float((stated == truth).mean()),
        "behaviour_ceiling_accuracy": float((ceiling == truth).mean()),
        "macro_f1": {"champion": macro_f1(predicted), "questionnaire": macro_f1(stated),
                     "behaviour_ceiling": macro_f1(ceiling)},
        "test_rows": int(test.sum()),
    }


def evaluate_uplift(bundle: ServingBundle, settings: Settings) -> dict:
    """Qini of the predicted uplift against the world's true uplift on the test window's month-ends, next to the
    oracle's (ranking by the true uplift itself), per action and pooled over all (client, action) pairs: the
    pooled figure judges the choice of whom to call with what."""
    from training.datasets import feature_as_of_dates, historical_features
    from training.uplift import SERVICE, TEST_MONTHS, qini_from_gains, with_action

    actions = list(bundle.metadata["actions"])
    test = feature_as_of_dates(settings.features_dir)[-TEST_MONTHS:]
    truth = read_truth_table(settings.ground_truth_dir, "action_uplift")
    truth["month_end"] = pd.to_datetime(truth["month_end"])
    truth = truth[truth["month_end"].isin(test)]
    if truth.empty:
        raise FileNotFoundError("the ground truth has no action uplift at the test window's month-ends "
                                f"({test[0].date()}..{test[-1].date()}): regenerate the world")
    entities = truth[["client_id", "month_end"]].drop_duplicates().rename(columns={"month_end": "as_of"})
    rows = historical_features(settings.features_dir, SERVICE, entities)
    names = bundle.feature_names[: len(bundle.feature_names) - len(actions)]
    rows = rows.dropna(subset=names).reset_index(drop=True)
    features = rows[names].to_numpy(dtype=np.float32)
    scorer = OnnxScorer(bundle.onnx_bytes, threads=0)
    predicted = rows[["client_id", "as_of"]].rename(columns={"as_of": "month_end"})
    for a, action in enumerate(actions):
        predicted[action] = scorer.predict(with_action(features, a))[:, 0]
    predicted = predicted.melt(id_vars=["client_id", "month_end"], var_name="action", value_name="predicted")
    merged = predicted.merge(truth[["client_id", "month_end", "action", "uplift"]],
                             on=["client_id", "month_end", "action"])
    per_action = {}
    for action, part in merged.groupby("action"):
        gains = part["uplift"].to_numpy()
        per_action[str(action)] = {"qini": qini_from_gains(part["predicted"].to_numpy(), gains),
                                   "oracle_qini": qini_from_gains(gains, gains)}
    gains = merged["uplift"].to_numpy()
    qini, oracle = qini_from_gains(merged["predicted"].to_numpy(), gains), qini_from_gains(gains, gains)
    return {"qini": qini, "oracle_qini": oracle, "share_of_oracle": qini / oracle if oracle else None,
            "per_action": per_action, "test_rows": len(rows),
            "window_test": f"{test[0].date()}..{test[-1].date()} ({len(test)} month-ends)"}


def evaluate(settings: Settings, alias: str = CHAMPION) -> dict:
    """Each model's alias version on its test window against the ground truth, under its report key (a model
    the serving can do without, such as the uplift model, only when it has that alias)."""
    if not Path(settings.ground_truth_dir).exists():
        raise FileNotFoundError(f"no ground truth at {settings.ground_truth_dir}: evaluation needs a generated world")
    reg = registry(settings)
    report = {}
    for spec in list(MODEL_SPECS.values()):
        if spec.evaluate is None or (not spec.required and reg.alias_version(spec.name, alias) is None):
            continue
        report[spec.report_name] = resolve(spec.evaluate)(reg.bundle(spec.name, alias), settings)
    return report
