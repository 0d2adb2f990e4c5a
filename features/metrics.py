"""Model-quality measures shared by the data profile and model evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd


def auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the ROC curve (ties count half); None when one class is missing."""
    labels = labels.astype(bool)
    pos, neg = int(labels.sum()), int((~labels).sum())
    if not pos or not neg:
        return None
    ranks = pd.Series(scores).rank(method="average").to_numpy()
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))
