"""Evaluation figures that need no trained model: the cause figures."""

from __future__ import annotations

import numpy as np
import pytest

from training.evaluation import cause_figures


def test_cause_recall_is_per_true_cause_and_the_largest_cause_guess_is_reported() -> None:
    true = np.array(["competitor"] * 6 + ["service"] * 3 + ["poor_trading"])
    predicted = np.array(["competitor"] * 5 + ["service"] + ["service", "competitor", "competitor"] + ["competitor"])
    figures = cause_figures(predicted, true)
    assert figures["cause_recall"] == pytest.approx({"competitor": 5 / 6, "service": 1 / 3, "poor_trading": 0.0})
    assert figures["cause_macro_recall"] == pytest.approx((5 / 6 + 1 / 3 + 0.0) / 3)
    assert figures["cause_accuracy"] == pytest.approx(0.6)
    assert figures["largest_cause_guess"] == {"cause": "competitor", "cause_accuracy": pytest.approx(0.6),
                                              "cause_macro_recall": pytest.approx(1 / 3)}


def test_always_guessing_the_largest_cause_has_its_accuracy_but_a_third_of_macro_recall() -> None:
    true = np.array(["competitor"] * 8 + ["service", "poor_trading"])
    figures = cause_figures(np.full(true.size, "competitor"), true)
    assert figures["cause_accuracy"] == pytest.approx(0.8)
    assert figures["cause_macro_recall"] == pytest.approx(1 / 3)


def test_no_true_churners_gives_no_figures() -> None:
    figures = cause_figures(np.array([], dtype=str), np.array([], dtype=str))
    assert figures["cause_accuracy"] is None and figures["cause_recall"] == {}
