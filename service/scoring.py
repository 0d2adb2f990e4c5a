"""The three champion models loaded for serving: ONNX scoring, calibration, bands, percentiles and causes.

One :class:`Models` object scores one client (the API) or a whole matrix of clients (simulation and batch
scoring) with the same code, so both give the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.model_features import feature_references
from model_registry.combined import CombinedScorer, combine
from model_registry.explain import CAUSES, ChurnExplainer
from model_registry.onnx_export import OnnxScorer
from model_registry.registry import CHAMPION, Registry, ServingBundle

MODEL_NAMES = ("churn", "value", "risk_profile")


@dataclass
class LoadedModel:
    bundle: ServingBundle
    scorer: OnnxScorer
    features: list[str]  # indicator names in the model's input order
    references: list[str]  # the same as view:indicator, for reading the feature store

    @property
    def version(self) -> int:
        return self.bundle.version

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        return frame[self.features].to_numpy(dtype=np.float32)


def load_model(bundle: ServingBundle, threads: int = 1) -> LoadedModel:
    """One registered model version ready to score: its ONNX session and the indicators it reads."""
    names = bundle.feature_names
    refs = {ref.split(":", 1)[1]: ref for ref in feature_references(bundle.metadata["feature_service"])}
    return LoadedModel(bundle, OnnxScorer(bundle.onnx_bytes, threads), names, [refs[n] for n in names])


class Models:
    """Champion (or any alias) versions of churn, value and risk_profile, ready to score."""

    def __init__(self, bundles: dict[str, ServingBundle], threads: int = 1) -> None:
        """``threads=1`` for per-client serving, 0 (every core) for scoring whole populations."""
        self.churn = load_model(bundles["churn"], threads)
        self.value = load_model(bundles["value"], threads)
        self.risk = load_model(bundles["risk_profile"], threads)
        meta = self.churn.bundle.metadata
        self.calibration_x = np.asarray(meta["calibration"]["x"], dtype=np.float64)
        self.calibration_y = np.asarray(meta["calibration"]["y"], dtype=np.float64)
        self.bands = dict(sorted(meta["bands"].items(), key=lambda kv: kv[1]))  # band → upper bound
        self._band_names = np.asarray([*self.bands, "high"], dtype=object)
        self._band_edges = np.asarray(list(self.bands.values()))
        import lightgbm

        trees = lightgbm.Booster(model_str=self.churn.bundle.booster_text).dump_model()["tree_info"]
        self.explainer = ChurnExplainer(self.churn.bundle.booster_text, self.churn.features, meta["cause_groups"],
                                        trees=trees)
        self.value_percentiles = np.asarray(self.value.bundle.metadata["percentiles"], dtype=np.float64)
        self.value_ranks = np.linspace(0, 100, len(self.value_percentiles))
        self.risk_classes = list(self.risk.bundle.metadata["classes"])
        # What a suitability mismatch is explained with (versions trained before it have none).
        self.risk_evidence = dict(self.risk.bundle.metadata.get("mismatch_evidence", {}))
        # Every indicator any model reads, once: inputs are converted to one float32 matrix over these, then each
        # model takes its columns (converting per model cost more than a model).
        self.inputs = list(dict.fromkeys([*self.churn.features, *self.value.features, *self.risk.features]))
        position = {name: i for i, name in enumerate(self.inputs)}
        self._columns = {name: [position[n] for n in model.features]
                         for name, model in zip(MODEL_NAMES, (self.churn, self.value, self.risk), strict=True)}
        # The three graphs and the churn trees' leaf lookup in one graph: one ONNX Runtime call scores a client
        # (or a whole matrix) and gives the leaves the likely cause is read from, without LightGBM.
        graph, outputs = combine({name: model.bundle.onnx_bytes for name, model in
                                  zip(MODEL_NAMES, (self.churn, self.value, self.risk), strict=True)},
                                 self._columns, len(self.inputs), leaves_of="churn", trees=trees)
        self.combined = CombinedScorer(graph, outputs, threads)

    @classmethod
    def load(cls, registry: Registry, alias: str = CHAMPION, threads: int = 1) -> Models:
        return cls({name: registry.bundle(name, alias) for name in MODEL_NAMES}, threads)

    @property
    def versions(self) -> dict[str, int]:
        return {"churn": self.churn.version, "value": self.value.version, "risk_profile": self.risk.version}

    @property
    def references(self) -> list[str]:
        """Every ``view:indicator`` any of the three models reads."""
        return list(dict.fromkeys([*self.churn.references, *self.value.references, *self.risk.references]))

    def band(self, probability: np.ndarray) -> np.ndarray:
        return self._band_names[np.searchsorted(self._band_edges, probability, side="right")]

    def percentile(self, amount: np.ndarray) -> np.ndarray:
        return np.interp(amount, self.value_percentiles, self.value_ranks)

    def run(self, matrix: np.ndarray) -> dict[str, np.ndarray]:
        """Every model's raw output for a float32 matrix over :attr:`inputs`, in one ONNX Runtime call: ``churn``
        (class probabilities), ``value`` (log amount), ``risk_profile`` (class probabilities) and
        ``churn_leaves`` (each row's leaf index in every churn tree)."""
        out = self.combined.run(np.ascontiguousarray(matrix, dtype=np.float32))
        out["churn_leaves"] = out["churn_leaves"].astype(np.intp)
        return out

    def columns(self, model: str, matrix: np.ndarray) -> np.ndarray:
        """The input of ``model`` (one of MODEL_NAMES) from a matrix over :attr:`inputs`."""
        return np.ascontiguousarray(matrix[:, self._columns[model]])

    def score_frame(self, frame: pd.DataFrame, with_causes: bool = True) -> pd.DataFrame:
        """Scores of every row of a frame holding the models' indicators (one row per client)."""
        matrix = frame[self.inputs].to_numpy(dtype=np.float32)
        scored = self.run(matrix)
        churn_raw = scored["churn"][:, 1]
        probability = np.interp(churn_raw, self.calibration_x, self.calibration_y)
        value = np.expm1(scored["value"].reshape(-1).astype(np.float64))
        risk = scored["risk_profile"]
        out = pd.DataFrame(index=frame.index)
        out["churn_probability"] = probability
        out["churn_band"] = self.band(probability)
        if with_causes:
            causes = self.explainer.cause_scores_of(scored["churn_leaves"]).argmax(axis=1)
            out["churn_cause"] = np.asarray(CAUSES, dtype=object)[causes]
        out["value_amount"] = value
        out["value_percentile"] = self.percentile(value)
        out["risk_profile"] = np.asarray(self.risk_classes, dtype=object)[risk.argmax(axis=1)]
        for k, cls in enumerate(self.risk_classes):
            out[f"risk_probability_{cls}"] = risk[:, k]
        return out
