"""The promotion gate: a challenger replaces the champion only if it passes parity and is not worse on the same
test window by more than a stated tolerance."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from config import Settings
from features.labels import RISK_CLASSES
from model_registry.errors import PromotionRefusedError
from model_registry.onnx_export import PARITY_TOLERANCE, OnnxScorer
from model_registry.registry import CHALLENGER, CHAMPION, ServingBundle
from training.datasets import build_dataset
from training.fit import split
from training.pipeline import UPLIFT_MODEL, registry

# Metric compared on the test window, and how much worse a challenger may be.
GATE = {"churn": ("auc", 0.005), "value": ("spearman", 0.01), "risk_profile": ("macro_f1", 0.01),
        # Mean Qini over the actions on the validation campaign (churners avoided per client, from outcomes).
        UPLIFT_MODEL: ("qini", 0.0005)}


@dataclass(frozen=True)
class GateResult:
    name: str
    metric: str
    tolerance: float
    challenger_version: int
    champion_version: int | None
    challenger_score: float
    champion_score: float | None
    parity_max_abs_diff: float
    promoted: bool
    reason: str


def _test_window(name: str, settings: Settings):
    if name == UPLIFT_MODEL:
        from training.uplift import build_uplift_data

        data = build_uplift_data(settings.raw_dir, settings.features_dir)
        rows = data.rows(data.validation)
        return rows.assign(as_of=rows["month_end"]), "churned"
    ds = build_dataset(name, settings.raw_dir, settings.features_dir)
    test = ds.frame[ds.frame["as_of"].isin(split(ds).test)]
    return test, ds.label


def score(name: str, bundle: ServingBundle, rows, label: str) -> float:
    from scipy.stats import spearmanr
    from sklearn.metrics import f1_score, roc_auc_score

    if name == UPLIFT_MODEL:
        return _uplift_score(bundle, rows)
    outputs = OnnxScorer(bundle.onnx_bytes).predict(rows[bundle.feature_names].to_numpy(dtype=np.float32))
    if name == "churn":
        return float(roc_auc_score(rows[label].astype(int), outputs[:, 1]))
    if name == "value":
        return float(spearmanr(outputs[:, 0], rows[label]).statistic)
    truth = rows[label].map({c: i for i, c in enumerate(RISK_CLASSES)}).to_numpy()
    return float(f1_score(truth, outputs.argmax(axis=1), average="macro"))


def _uplift_inputs(bundle: ServingBundle, rows) -> tuple[np.ndarray, list[str]]:
    """The uplift model's input rows: every row once per action (indicators, then the one-hot action)."""
    from training.uplift import with_action

    actions = list(bundle.metadata["actions"])
    features = rows[bundle.feature_names[: len(bundle.feature_names) - len(actions)]].to_numpy(dtype=np.float32)
    return np.vstack([with_action(features, a) for a in range(len(actions))]), actions


def _uplift_score(bundle: ServingBundle, rows) -> float:
    from training.uplift import observed_qini_by_action

    inputs, actions = _uplift_inputs(bundle, rows)
    predicted = OnnxScorer(bundle.onnx_bytes).predict(inputs)[:, 0].reshape(len(actions), len(rows)).T
    frame = rows[["treatment", "churned"]].assign(**{f"uplift_{a}": predicted[:, k] for k, a in enumerate(actions)})
    return float(np.mean(list(observed_qini_by_action(frame, tuple(actions)).values())))


def parity(bundle: ServingBundle, rows) -> float:
    """LightGBM (the version's own model text) against its ONNX graph on the test window."""
    import lightgbm

    if bundle.name == UPLIFT_MODEL:
        features, _ = _uplift_inputs(bundle, rows)
    else:
        features = rows[bundle.feature_names].to_numpy(dtype=np.float32)
    native = np.asarray(lightgbm.Booster(model_str=bundle.booster_text).predict(features))
    onnx = OnnxScorer(bundle.onnx_bytes).predict(features)
    if native.ndim == 1:
        native = np.column_stack([1 - native, native]) if onnx.shape[1] == 2 else native.reshape(-1, 1)
    return float(np.max(np.abs(native - onnx))) if len(features) else 0.0


def promote(name: str, settings: Settings) -> GateResult:
    """Move `champion` to the challenger if it passes the gate; raises PromotionRefusedError saying why."""
    reg = registry(settings)
    metric, tolerance = GATE[name]
    challenger = reg.alias_version(name, CHALLENGER)
    if challenger is None:
        raise PromotionRefusedError(f"{name} has no challenger to promote; train one with `crm train`")
    champion = reg.alias_version(name, CHAMPION)
    rows, label = _test_window(name, settings)
    challenger_bundle = reg.bundle(name, version=challenger)
    diff = parity(challenger_bundle, rows)
    challenger_score = score(name, challenger_bundle, rows, label)
    champion_score = None if champion is None else score(name, reg.bundle(name, version=champion), rows, label)
    window = f"{rows['as_of'].min().date()}..{rows['as_of'].max().date()}"

    def result(promoted: bool, reason: str) -> GateResult:
        return GateResult(name, metric, tolerance, challenger, champion, challenger_score, champion_score, diff,
                          promoted, reason)

    if diff > PARITY_TOLERANCE:
        raise PromotionRefusedError(
            f"refused: {name} v{challenger} fails ONNX parity on the test window ({window}): max absolute "
            f"difference {diff:.3g} > {PARITY_TOLERANCE:g}")
    if champion_score is not None and challenger_score < champion_score - tolerance:
        raise PromotionRefusedError(
            f"refused: {name} v{challenger} has {metric} {challenger_score:.4f} on the test window ({window}), "
            f"worse than champion v{champion} ({champion_score:.4f}) by more than the tolerance {tolerance:g}")
    reg.set_alias(name, CHAMPION, challenger)
    reg.delete_alias(name, CHALLENGER)
    before = f"champion v{champion} {champion_score:.4f}" if champion is not None else "no champion before"
    return result(True, f"promoted {name} v{challenger} to champion: {metric} {challenger_score:.4f} on the test "
                        f"window ({window}), {before}; parity {diff:.2g}")
