"""Evaluation plots logged with every run: ROC, precision-recall, calibration, lift, importance, contributions."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / f"{name}.png", dpi=90, bbox_inches="tight")
    _plt().close(fig)


def classification_plots(folder: Path, y: np.ndarray, p: np.ndarray) -> None:
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import precision_recall_curve, roc_curve

    plt = _plt()
    fpr, tpr, _ = roc_curve(y, p)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot(fpr, tpr)
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test window)")
    _save(fig, folder, "roc")
    precision, recall, _ = precision_recall_curve(y, p)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot(recall, precision)
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (test window)")
    _save(fig, folder, "precision_recall")
    observed, predicted = calibration_curve(y, p, n_bins=10, strategy="quantile")
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot(predicted, observed, marker="o")
    ax.plot([0, max(predicted.max(), observed.max())], [0, max(predicted.max(), observed.max())], "--", color="grey")
    ax.set(xlabel="predicted probability", ylabel="observed rate", title="Calibration (test window)")
    _save(fig, folder, "calibration")
    lift_plot(folder, y.astype(float), p, "churn rate")


def lift_plot(folder: Path, outcome: np.ndarray, score: np.ndarray, what: str) -> None:
    plt = _plt()
    order = np.argsort(-score)
    deciles = np.array_split(outcome[order], 10)
    means = [d.mean() if len(d) else 0.0 for d in deciles]
    overall = outcome.mean() if len(outcome) else 1.0
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.bar(range(1, 11), [m / overall if overall else 0 for m in means])
    ax.axhline(1, color="grey", linestyle="--")
    ax.set(xlabel="decile of predicted score (1 = highest)", ylabel=f"lift of {what}", title="Lift by decile")
    _save(fig, folder, "lift_by_decile")


def importance_plots(folder: Path, model, names: list[str], contributions: np.ndarray | None) -> None:
    plt = _plt()
    gain = model.booster_.feature_importance(importance_type="gain")
    order = np.argsort(gain)[-20:]
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.barh([names[i] for i in order], gain[order])
    ax.set(title="Feature importance (gain)")
    _save(fig, folder, "feature_importance")
    if contributions is not None:
        mean_abs = np.abs(contributions).mean(axis=0)
        order = np.argsort(mean_abs)[-20:]
        fig, ax = plt.subplots(figsize=(6, 6))
        ax.barh([names[i] for i in order], mean_abs[order])
        ax.set(title="Contribution summary (mean |SHAP|, test window)")
        _save(fig, folder, "contribution_summary")


def uplift_plots(folder: Path, validation, actions: tuple[str, ...]) -> None:
    """Per action on the validation campaign: the Qini curve against random targeting, and the observed uplift
    (control churn rate minus treated churn rate) by decile of predicted uplift next to the predicted one."""
    from training.uplift import NO_ACTION, qini_curve_observed, uplift_by_decile

    plt = _plt()
    shown = [a for a in actions if (validation["treatment"] == a).any()]
    if not shown:
        return
    columns = min(4, len(shown))
    rows = -(-len(shown) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.2 * rows), squeeze=False)
    deciles = []
    for ax, action in zip(axes.flat, shown, strict=False):
        part = validation[validation["treatment"].isin([NO_ACTION, action])]
        treated = (part["treatment"] == action).to_numpy()
        churned = part["churned"].astype(int).to_numpy()
        fraction, gain = qini_curve_observed(part[f"uplift_{action}"].to_numpy(), treated, churned)
        ax.plot(fraction, gain, label="model")
        ax.plot([0, 1], [0, gain[-1]], "--", color="grey", label="random")
        ax.set(title=action.replace("_", " "), xlabel="share targeted", ylabel="churners avoided per client")
        deciles.append((action, uplift_by_decile(part[f"uplift_{action}"].to_numpy(), treated, churned)))
    for ax in list(axes.flat)[len(shown):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Qini curves (validation campaign)")
    fig.tight_layout()
    _save(fig, folder, "qini_curves")
    fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.2 * rows), squeeze=False)
    for ax, (action, table) in zip(axes.flat, deciles, strict=False):
        ax.bar(table.index - 0.2, table["observed"], width=0.4, label="observed")
        ax.bar(table.index + 0.2, table["predicted"], width=0.4, label="predicted")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set(title=action.replace("_", " "), xlabel="decile of predicted uplift", ylabel="churn probability fall")
    for ax in list(axes.flat)[len(deciles):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Uplift by decile (validation campaign)")
    fig.tight_layout()
    _save(fig, folder, "uplift_by_decile")
