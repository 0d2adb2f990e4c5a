"""Rule inputs from indicators and model scores: the one mapping from the vocabulary's sources to values.

Every vocabulary term names its source (``indicator:VIEW:NAME`` or ``model:OUTPUT``); this module reads those
sources and converts each value to the term's type, for one client (the API) or for the whole population.
"""

from __future__ import annotations

import math

import pandas as pd

from rules.vocabulary import Term, Vocabulary
from service.lifecycle import CHURN_SCORED_STAGES, Departure, Register, stage, stages_of


def indicator_references(vocabulary: Vocabulary) -> list[str]:
    """The ``view:indicator`` references the rules read."""
    return list(dict.fromkeys(vocabulary.indicator_sources().values()))


def decision_references(model_references: list[str], vocabulary: Vocabulary) -> list[str]:
    """Every ``view:indicator`` one decision reads: the models' inputs, then the rules' indicator terms."""
    return list(dict.fromkeys([*model_references, *indicator_references(vocabulary)]))


_MODEL_VALUES = {
    "churn_probability": lambda s: s["churn"]["probability"],
    "churn_band": lambda s: s["churn"]["band"],
    "churn_cause": lambda s: s["churn"]["likely_cause"],
    "value_amount": lambda s: s["value"]["amount_yuan"],
    "value_percentile": lambda s: s["value"]["percentile"],
    "risk_profile": lambda s: s["risk_profile"]["class"],
}
_CONVERT = {"number": float, "integer": int, "boolean": bool, "string": str}
CHURN_SOURCE = "model:churn_"  # the churn model's outputs: probability, band and likely cause
CHURN_CAUSE_SOURCE = "model:churn_cause"


def client_inputs(vocabulary: Vocabulary, values: dict[str, object] | None, scores: dict | None,
                  departure: Departure | None = None) -> dict[str, object]:
    """Each vocabulary term from its source; the term's conservative default where the source has no value. The
    lifecycle stage comes last, from the other inputs (a closed account is lost whatever else is known); outside
    the stages churn scoring applies to, the churn terms take their defaults, and a lost client's churn cause is
    the one recorded when it left."""
    out: dict[str, object] = {}
    derived = []
    for name, term in vocabulary.terms.items():
        if term.source.startswith("lifecycle:"):
            derived.append(name)
            continue
        if term.source.startswith("model:"):
            value = _MODEL_VALUES[term.source[6:]](scores) if scores is not None else None
        else:
            value = values.get(term.source.rsplit(":", 1)[1]) if values is not None else None
        if value is None or (isinstance(value, float) and math.isnan(value)):
            value = term.default
        out[name] = _CONVERT[term.type](value)
    for name in derived:
        if departure is not None and departure.closed:
            found = "lost"
        elif values is None:  # degraded: nothing is known about the client's history
            out[name] = vocabulary.terms[name].default
            continue
        else:
            found = stage(float(out.get("total_assets", 0.0)), int(out.get("tenure_days", 365)),  # type: ignore[arg-type]
                          bool(out.get("dormant_90d", False)), float(out.get("outflow_365d", 0.0)),  # type: ignore[arg-type]
                          str(out.get("churn_band", "low")), departure)
        out[name] = found
        _unscored_churn(vocabulary, out, found, departure)
    return out


def _unscored_churn(vocabulary: Vocabulary, inputs: dict[str, object], found: str,
                    departure: Departure | None) -> None:
    """Outside the stages churn scoring applies to, the churn terms take their defaults; a lost client's cause is
    the one recorded when it left."""
    if found in CHURN_SCORED_STAGES:
        return
    for name, term in vocabulary.terms.items():
        if term.source.startswith(CHURN_SOURCE):
            inputs[name] = _CONVERT[term.type](term.default)
            if found == "lost" and departure is not None and term.source == CHURN_CAUSE_SOURCE:
                inputs[name] = departure.cause


def _column(term: Term) -> str:
    return term.source.rsplit(":", 1)[1]


def population_inputs(vocabulary: Vocabulary, features: pd.DataFrame, scores: pd.DataFrame,
                      register: Register | None = None) -> list[dict]:
    """One input dict per row; ``features`` holds indicator columns by name, ``scores`` the model outputs,
    both indexed by client id in the same order."""
    names, columns = [], []
    lifecycle_names = []
    for name, term in vocabulary.terms.items():
        if term.source.startswith("lifecycle:"):
            lifecycle_names.append(name)
            continue
        source = scores if term.source.startswith("model:") else features
        column = source[_column(term)]
        if term.type == "string":
            values = column.astype(str).tolist()
        elif term.type == "boolean":
            values = column.astype(bool).tolist()
        elif term.type == "integer":
            values = column.fillna(term.default).round().astype("int64").tolist()
        else:
            values = column.astype("float64").fillna(float(term.default)).tolist()
        names.append(name)
        columns.append(values)
    if lifecycle_names:
        stages = stages_of(features, scores["churn_band"], register)
        for name in lifecycle_names:
            names.append(name)
            columns.append(stages)
    rows = [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]
    if lifecycle_names:
        get = register.get if register is not None else (lambda _c: None)
        for client_id, row in zip(features.index, rows, strict=True):
            found = str(row[lifecycle_names[0]])
            if found not in CHURN_SCORED_STAGES:
                _unscored_churn(vocabulary, row, found, get(client_id))
    return rows
