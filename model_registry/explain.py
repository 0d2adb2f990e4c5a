"""Why a churn score is what it is: per-indicator contributions (LightGBM's SHAP values) and the likely cause.

The cause is the group of indicators whose contributions push the score up the most; the groups come with the
model version (its serving metadata), so training and serving explain the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CAUSES = ("poor_trading", "competitor", "service")


@dataclass(frozen=True)
class Contribution:
    indicator: str
    value: float
    contribution: float


@dataclass(frozen=True)
class Explanation:
    cause: str
    cause_scores: dict[str, float]
    top: tuple[Contribution, ...]


class ChurnExplainer:
    def __init__(self, booster_text: str, feature_names: list[str], cause_groups: dict[str, list[str]],
                 top_n: int = 5) -> None:
        import lightgbm

        self.booster = lightgbm.Booster(model_str=booster_text)
        self.feature_names = list(feature_names)
        position = {name: i for i, name in enumerate(self.feature_names)}
        self.groups = {cause: np.array([position[f] for f in cause_groups.get(cause, []) if f in position], dtype=int)
                       for cause in CAUSES}
        self.top_n = top_n

    def contributions(self, features: np.ndarray) -> np.ndarray:
        """Per-row contributions to the log-odds, one column per feature (the bias column dropped)."""
        values = self.booster.predict(np.asarray(features, dtype=np.float64), pred_contrib=True)
        return np.asarray(values)[:, : len(self.feature_names)]

    def causes(self, contributions: np.ndarray) -> np.ndarray:
        """Index into CAUSES of each row's likely cause: the group with the largest upward push."""
        positive = np.clip(contributions, 0, None)
        scores = np.stack([positive[:, idx].sum(axis=1) if idx.size else np.zeros(len(positive))
                           for idx in self.groups.values()], axis=1)
        return scores.argmax(axis=1)

    def explain(self, features: np.ndarray) -> list[Explanation]:
        features = np.atleast_2d(features)
        contributions = self.contributions(features)
        positive = np.clip(contributions, 0, None)
        out = []
        for row, contrib in enumerate(contributions):
            scores = {cause: float(positive[row, idx].sum()) if idx.size else 0.0
                      for cause, idx in self.groups.items()}
            order = np.argsort(-contrib)[: self.top_n]
            top = tuple(Contribution(self.feature_names[i], float(features[row, i]), float(contrib[i]))
                        for i in order if contrib[i] > 0)
            out.append(Explanation(cause=max(scores, key=scores.get), cause_scores=scores, top=top))
        return out
