"""The promotion gate: a challenger replaces the champion only if it passes parity and is not worse on the same
test window by more than a stated tolerance."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from config import Settings
from model_registry.errors import PromotionRefusedError
from model_registry.onnx_export import PARITY_TOLERANCE, OnnxScorer
from model_registry.registry import CHALLENGER, CHAMPION, ServingBundle
from model_registry.specs import ModelSpec, Output, model_spec
from training.datasets import build_dataset
from training.fit import split
from training.pipeline import registry
from training.specs import resolve


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


def _test_window(spec: ModelSpec, settings: Settings):
    if spec.gate_rows is not None:
        return resolve(spec.gate_rows)(spec, settings)
    ds = build_dataset(spec.name, settings.raw_dir, settings.features_dir)
    test = ds.frame[ds.frame["as_of"].isin(split(ds).test)]
    return test, ds.label


def _auc(rows, label: str, outputs: np.ndarray, bundle: ServingBundle) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(rows[label].astype(int), outputs[:, 1]))


def _spearman(rows, label: str, outputs: np.ndarray, bundle: ServingBundle) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(outputs[:, 0], rows[label]).statistic)


def _macro_f1(rows, label: str, outputs: np.ndarray, bundle: ServingBundle) -> float:
    from sklearn.metrics import f1_score

    classes = list(bundle.metadata["classes"])
    truth = rows[label].map({c: i for i, c in enumerate(classes)}).to_numpy()
    return float(f1_score(truth, outputs.argmax(axis=1), average="macro"))


def _qini(rows, label: str, outputs: np.ndarray, bundle: ServingBundle) -> float:
    """Mean Qini over the actions (churners avoided per client, from outcomes): ``outputs`` are the effects."""
    from training.uplift import observed_qini_by_action

    actions = list(bundle.metadata["actions"])
    frame = rows[["treatment", label]].rename(columns={label: "churned"})
    frame = frame.assign(**{f"uplift_{a}": outputs[:, k] for k, a in enumerate(actions)})
    return float(np.mean(list(observed_qini_by_action(frame, tuple(actions)).values())))


# The gate's metrics by the name a spec gives as its test metric: (rows, label, outputs, bundle) → score.
GATE_METRICS = {"auc": _auc, "spearman": _spearman, "macro_f1": _macro_f1, "qini": _qini}


def _inputs(bundle: ServingBundle, rows) -> np.ndarray:
    """The graph's input rows: the indicators, or for an action-effect model every row once per action."""
    if model_spec(bundle.name).output == Output.ACTION_EFFECTS:
        from training.uplift import with_action

        actions = list(bundle.metadata["actions"])
        features = rows[bundle.feature_names[: len(bundle.feature_names) - len(actions)]].to_numpy(dtype=np.float32)
        return np.vstack([with_action(features, a) for a in range(len(actions))])
    return rows[bundle.feature_names].to_numpy(dtype=np.float32)


def outputs_of(bundle: ServingBundle, rows) -> np.ndarray:
    """The ONNX graph's output for the rows; for an action-effect model, [row, action]."""
    predicted = OnnxScorer(bundle.onnx_bytes).predict(_inputs(bundle, rows))
    if model_spec(bundle.name).output == Output.ACTION_EFFECTS:
        return predicted[:, 0].reshape(len(bundle.metadata["actions"]), len(rows)).T
    return predicted


def score(name: str, bundle: ServingBundle, rows, label: str) -> float:
    spec = model_spec(name)
    try:
        metric = GATE_METRICS[spec.test_metric]
    except KeyError:
        raise ValueError(f"{name}: no gate metric {spec.test_metric!r}; known: {', '.join(GATE_METRICS)}") from None
    return metric(rows, label, outputs_of(bundle, rows), bundle)


def parity(bundle: ServingBundle, rows) -> float:
    """LightGBM (the version's own model text) against its ONNX graph on the test window."""
    import lightgbm

    features = _inputs(bundle, rows)
    native = np.asarray(lightgbm.Booster(model_str=bundle.booster_text).predict(features))
    onnx = OnnxScorer(bundle.onnx_bytes).predict(features)
    if native.ndim == 1:
        native = np.column_stack([1 - native, native]) if onnx.shape[1] == 2 else native.reshape(-1, 1)
    return float(np.max(np.abs(native - onnx))) if len(features) else 0.0


def promote(name: str, settings: Settings) -> GateResult:
    """Move `champion` to the challenger if it passes the gate; raises PromotionRefusedError saying why."""
    spec = model_spec(name)
    name = spec.name
    reg = registry(settings)
    metric, tolerance = spec.test_metric, spec.gate_tolerance
    challenger = reg.alias_version(name, CHALLENGER)
    if challenger is None:
        raise PromotionRefusedError(f"{name} has no challenger to promote; train one with `crm train`")
    champion = reg.alias_version(name, CHAMPION)
    rows, label = _test_window(spec, settings)
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
            f"refused: {name} v{challenger} has {metric} {challenger_score:.4g} on the test window ({window}), "
            f"worse than champion v{champion} ({champion_score:.4g}) by more than the tolerance {tolerance:g}")
    reg.set_alias(name, CHAMPION, challenger)
    reg.delete_alias(name, CHALLENGER)
    before = f"champion v{champion} {champion_score:.4g}" if champion is not None else "no champion before"
    return result(True, f"promoted {name} v{challenger} to champion: {metric} {challenger_score:.4g} on the test "
                        f"window ({window}), {before}; parity {diff:.2g}")
