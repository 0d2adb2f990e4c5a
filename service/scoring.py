"""The champion models loaded for serving: ONNX scoring, calibration, bands, percentiles, causes and effects.

Which models are served comes from the model list (``model_registry.specs``): every model with a champion, the
required ones (churn, value, risk profile) always. One :class:`Models` object scores one client (the API) or a
whole matrix of clients (simulation and batch scoring) with the same code, so both give the same numbers. The
per-client models run as one combined ONNX graph; an action-effect model (retention uplift) runs once over every
(client, action) pair.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.model_features import feature_references
from model_registry.combined import CombinedScorer, combine
from model_registry.errors import ModelNotFoundError
from model_registry.explain import CAUSES, ChurnExplainer
from model_registry.onnx_export import OnnxScorer
from model_registry.registry import CHAMPION, Registry, ServingBundle
from model_registry.specs import MODEL_SPECS, ModelSpec, Output, model_names, model_spec


@dataclass
class LoadedModel:
    bundle: ServingBundle
    scorer: OnnxScorer
    features: list[str]  # the graph's input names in order (indicators, then any action one-hot)
    references: list[str]  # the indicators among them as view:indicator, for reading the feature store

    @property
    def indicators(self) -> list[str]:
        """The indicators the model reads (its inputs without an action-effect model's one-hot actions)."""
        return self.features[: len(self.references)]

    @property
    def version(self) -> int:
        return self.bundle.version

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        return frame[self.features].to_numpy(dtype=np.float32)


def load_model(bundle: ServingBundle, threads: int = 1) -> LoadedModel:
    """One registered model version ready to score: its ONNX session and the indicators it reads."""
    names = bundle.feature_names
    refs = {ref.split(":", 1)[1]: ref for ref in feature_references(bundle.metadata["feature_service"])}
    # An action-effect model's inputs end with one one-hot column per action; they are not indicators.
    indicators = names[: len(names) - len(bundle.metadata.get("actions", ()))]
    return LoadedModel(bundle, OnnxScorer(bundle.onnx_bytes, threads), names, [refs[n] for n in indicators])


class Models:
    """Champion (or any alias) versions of every model of the list, ready to score.

    ``churn``, ``value`` and ``risk`` are the three models every decision's scores are named after; any other
    model is scored by what its output means (:meth:`other_scores`), and an action-effect model gives each
    action's effect on the client (:meth:`action_effects`)."""

    def __init__(self, bundles: dict[str, ServingBundle], threads: int = 1) -> None:
        """``threads=1`` for per-client serving, 0 (every core) for scoring whole populations."""
        missing = [spec.name for spec in MODEL_SPECS.values() if spec.required and spec.name not in bundles]
        if missing:
            raise ModelNotFoundError(missing[0], "given")
        order = [n for n in model_names() if n in bundles]
        self.loaded: dict[str, LoadedModel] = {n: load_model(bundles[n], threads) for n in order}
        self.specs: dict[str, ModelSpec] = {n: model_spec(n) for n in order}
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
        self.inputs = list(dict.fromkeys(n for m in self.loaded.values() for n in m.indicators))
        position = {name: i for i, name in enumerate(self.inputs)}
        self._columns = {name: [position[n] for n in model.indicators] for name, model in self.loaded.items()}
        # The per-client graphs and the churn trees' leaf lookup in one graph: one ONNX Runtime call scores a
        # client (or a whole matrix) and gives the leaves the likely cause is read from, without LightGBM.
        self.per_client = [n for n in self.loaded if self.specs[n].output != Output.ACTION_EFFECTS]
        # The action-effect model (at most one: arbitration ranks by it), over every (client, action) pair, in the
        # same graph (a session of its own cost a decision a second ONNX Runtime call).
        effect_models = [n for n in self.loaded if self.specs[n].output == Output.ACTION_EFFECTS]
        self.effects_model: str | None = effect_models[0] if effect_models else None
        self.effect_actions: list[str] = (list(self.loaded[self.effects_model].bundle.metadata["actions"])
                                          if self.effects_model else [])
        self._trees, self._threads = trees, threads
        self.combined = self._combined(with_effects=True)
        # ONNX Runtime runs every node of a graph whatever outputs are asked: scoring without the effects (batch
        # scoring) gets a graph without them, built when first needed.
        self._without_effects: CombinedScorer | None = None if self.effects_model else self.combined

    def _combined(self, with_effects: bool) -> CombinedScorer:
        effects = {self.effects_model: len(self.effect_actions)} if with_effects and self.effects_model else {}
        in_graph = self.per_client + list(effects)
        graph, outputs = combine({name: self.loaded[name].bundle.onnx_bytes for name in in_graph},
                                 {name: self._columns[name] for name in in_graph}, len(self.inputs),
                                 leaves_of="churn", trees=self._trees, effects=effects)
        return CombinedScorer(graph, outputs, self._threads)

    @property
    def churn(self) -> LoadedModel:
        return self.loaded["churn"]

    @property
    def value(self) -> LoadedModel:
        return self.loaded["value"]

    @property
    def risk(self) -> LoadedModel:
        return self.loaded["risk_profile"]

    @classmethod
    def load(cls, registry: Registry, alias: str = CHAMPION, threads: int = 1) -> Models:
        """Every model's ``alias`` version; a model serving can do without is left out when it has none."""
        bundles = {}
        for spec in list(MODEL_SPECS.values()):
            if not spec.required and registry.alias_version(spec.name, alias) is None:
                continue
            bundles[spec.name] = registry.bundle(spec.name, alias)
        return cls(bundles, threads)

    @property
    def versions(self) -> dict[str, int]:
        return {name: model.version for name, model in self.loaded.items()}

    @property
    def references(self) -> list[str]:
        """Every ``view:indicator`` any of the models reads."""
        return list(dict.fromkeys(r for m in self.loaded.values() for r in m.references))

    def band(self, probability: np.ndarray) -> np.ndarray:
        return self._band_names[np.searchsorted(self._band_edges, probability, side="right")]

    def percentile(self, amount: np.ndarray) -> np.ndarray:
        return np.interp(amount, self.value_percentiles, self.value_ranks)

    def run(self, matrix: np.ndarray, with_effects: bool = False) -> dict[str, np.ndarray]:
        """Every per-client model's raw output for a float32 matrix over :attr:`inputs`, in one ONNX Runtime
        call: ``churn`` (class probabilities), ``value`` (log amount), ``risk_profile`` (class probabilities),
        any other model's, and ``churn_leaves`` (each row's leaf index in every churn tree); with
        ``with_effects``, also the action-effect model's [row, action of :attr:`effect_actions`] when one is
        served (the fall of each client's 90-day churn probability each action brings)."""
        if with_effects:
            scorer = self.combined
        else:
            if self._without_effects is None:
                self._without_effects = self._combined(with_effects=False)
            scorer = self._without_effects
        out = scorer.run(np.ascontiguousarray(matrix, dtype=np.float32))
        out["churn_leaves"] = out["churn_leaves"].astype(np.intp)
        return out

    def columns(self, model: str, matrix: np.ndarray) -> np.ndarray:
        """The input of ``model`` from a matrix over :attr:`inputs`."""
        return np.ascontiguousarray(matrix[:, self._columns[model]])

    def action_effects(self, matrix: np.ndarray) -> np.ndarray | None:
        """[row, action of :attr:`effect_actions`]: each action's estimated effect on each client (the fall of
        its 90-day churn probability), from a matrix over :attr:`inputs`; None without an action-effect model."""
        return self.effects(self.run(matrix, with_effects=True)) if self.effects_model is not None else None

    def effects(self, scored: Mapping[str, np.ndarray]) -> np.ndarray | None:
        """The action-effect model's [row, action] in the result of :meth:`run` with effects; None without one."""
        return scored[self.effects_model] if self.effects_model is not None else None

    def other_scores(self, scored: Mapping[str, np.ndarray]) -> dict[str, list[dict]]:
        """Per model other than the three named ones, each row's scores by what the model's output means."""
        out: dict[str, list[dict]] = {}
        for name in self.per_client:
            if name in ("churn", "value", "risk_profile"):
                continue
            raw, kind = scored[name], self.specs[name].output
            if kind in (Output.PROBABILITY, Output.CALIBRATED_PROBABILITY):
                out[name] = [{"probability": round(float(p), 6)} for p in raw[:, 1]]
            elif kind == Output.LOG_AMOUNT:
                out[name] = [{"amount": round(float(v), 2)} for v in np.expm1(raw[:, 0].astype(np.float64))]
            else:
                classes = list(self.loaded[name].bundle.metadata["classes"])
                out[name] = [{"class": classes[int(np.argmax(row))],
                              "probabilities": {c: round(float(p), 6) for c, p in zip(classes, row, strict=True)}}
                             for row in raw]
        return out
    def score_frame(self, frame: pd.DataFrame, with_causes: bool = True, with_effects: bool = False
                    ) -> pd.DataFrame:
        """Scores of every row of a frame holding the models' indicators (one row per client); with
        ``with_effects``, also each action's estimated effect (``uplift_<action>``) when an uplift model is served."""
        matrix = frame[self.inputs].to_numpy(dtype=np.float32)
        scored = self.run(matrix, with_effects)
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
        effects = self.effects(scored) if with_effects else None
        if effects is not None:
            for k, action in enumerate(self.effect_actions):
                out[f"uplift_{action}"] = effects[:, k]
        return out
