"""One client's decision: online indicators → three models → rules → tier, package, actions, alerts, reasons.

A :class:`Served` snapshot holds everything a decision uses (model versions, the active ruleset, the online
reader); a request takes the current snapshot once, so a reload that swaps it never mixes versions inside one
decision. :func:`compute` is pure — recorded indicator values and versions give the same decision again, which
is what replay relies on.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import numpy as np

from features.indicators.compute import catalog
from features.store.online_reader import OnlineReader, OnlineStoreUnavailable
from model_registry.explain import CAUSES
from rules.engine import Ruleset
from rules.vocabulary import Vocabulary
from service.errors import ClientNotFoundError
from service.rule_inputs import client_inputs
from service.scoring import Models

TOP_CONTRIBUTORS = 5
RISK_LEVEL_CLASS = {1: "conservative", 2: "conservative", 3: "balanced", 4: "aggressive", 5: "aggressive"}
_INDICATORS = {i.name: i for i in catalog()}


@dataclass
class Served:
    """Everything one decision reads, swapped as a whole on reload."""

    models: Models | None  # None: no champions could be loaded, every decision is rules-only
    ruleset: Ruleset
    reader: OnlineReader | None
    vocabulary: Vocabulary
    loaded_at: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def model_versions(self) -> dict[str, int] | None:
        return self.models.versions if self.models is not None else None


def _vector(values: dict[str, object], names: list[str]) -> np.ndarray:
    row = [values.get(n) for n in names]
    return np.array([[math.nan if v is None else v for v in row]], dtype=np.float32)


def _fmt(value: object, unit: str) -> str:
    text = (f"{value:,.2f}" if abs(value) >= 100 else f"{value:.3g}") if isinstance(value, float) else str(value)
    return f"{text} {unit}" if unit and unit not in ("flag", "category") else text


def score(models: Models, values: dict[str, object]) -> dict:
    """The three models' outputs for one client's indicator values."""
    churn_x = _vector(values, models.churn.features)
    raw = float(models.churn.scorer.predict(churn_x)[0, 1])
    probability = float(np.interp(raw, models.calibration_x, models.calibration_y))
    band = next((name for name, upper in models.bands.items() if probability < upper), "high")
    explainer = models.explainer
    rises = explainer.rises(churn_x)
    cause_scores = rises @ explainer.membership
    cause = CAUSES[int(np.argmax(cause_scores))]
    contributors = []
    for i in np.argsort(-rises)[:TOP_CONTRIBUTORS]:
        if rises[i] <= 0:
            break
        name = models.churn.features[i]
        meta = _INDICATORS.get(name)
        value = values.get(name)
        text = f"{name} = {_fmt(value, meta.unit if meta else '')}"
        if meta is not None:
            text += f" ({meta.zh}): {meta.formula}"
        contributors.append({"indicator": name, "value": value, "push": round(float(rises[i]), 4), "text": text})
    amount = float(np.expm1(models.value.scorer.predict(_vector(values, models.value.features))[0, 0]))
    percentile = float(np.interp(amount, models.value_percentiles, models.value_ranks))
    risk = models.risk.scorer.predict(_vector(values, models.risk.features))[0]
    risk_class = models.risk_classes[int(np.argmax(risk))]
    stated = values.get("stated_risk_level")
    stated_class = RISK_LEVEL_CLASS.get(int(stated)) if isinstance(stated, int | float) else None
    order = list(models.risk_classes)
    mismatch = stated_class is not None and order.index(risk_class) > order.index(stated_class)
    return {
        "churn": {"probability": round(probability, 6), "band": band, "likely_cause": cause,
                  "cause_scores": {c: round(float(s), 4) for c, s in zip(CAUSES, cause_scores, strict=True)}},
        "value": {"amount_yuan": round(amount, 2), "percentile": round(percentile, 2)},
        "risk_profile": {"class": risk_class,
                         "probabilities": {c: round(float(p), 6) for c, p in zip(order, risk, strict=True)},
                         "stated_level": f"C{int(stated)}" if stated_class else None,
                         "suitability_mismatch": mismatch},
        "_contributors": contributors,
    }


def compute(served: Served, client_id: str, values: dict[str, object] | None, as_of: str | None,
            degraded_reason: str | None = None) -> tuple[dict, dict[str, object]]:
    """The decision response (without id and timing) and the rule inputs it used."""
    scores = None
    if values is not None and served.models is not None and degraded_reason is None:
        try:
            scores = score(served.models, values)
        except Exception as e:  # noqa: BLE001 - a boundary: report it, never fail the request or thread  # a model that cannot score must not fail the decision
            degraded_reason = f"models could not score: {e}"
    elif degraded_reason is None and served.models is None:
        degraded_reason = "no champion models are loaded"
    inputs = client_inputs(served.vocabulary, values if degraded_reason is None else None, scores)
    decision = served.ruleset.evaluate(inputs, check=False)
    contributors = scores.pop("_contributors") if scores is not None else []
    described = served.ruleset.descriptions
    rules = [{"table": table, "rule": r, "description": described[(table, r)]}
             for table, fired in decision.fired for r in fired]
    response = {
        "client_id": client_id,
        "as_of": as_of,
        "degraded": degraded_reason is not None,
        "degraded_reason": degraded_reason,
        "tier": decision.tier,
        "package": decision.package,
        "actions": list(decision.actions),
        "alerts": list(decision.alerts),
        "scores": scores,
        "reasons": {"rules": rules, "churn_contributors": contributors},
        "versions": {"models": served.model_versions if scores is not None else None,
                     "ruleset": decision.version},
    }
    return response, inputs


def as_of_date(epoch: float | None, timezone: str) -> str | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, tz=ZoneInfo(timezone)).date().isoformat()


def decide(served: Served, client_id: str, timezone: str) -> tuple[dict, dict[str, object] | None, dict]:
    """Read the client's indicators and decide; returns (response, indicator values read, rule inputs).
    Raises ClientNotFoundError when the online store has no row for the client."""
    values = None
    as_of = None
    reason = None
    if served.reader is None:
        reason = "the online store is not configured or could not be opened"
    else:
        try:
            found = served.reader.read(client_id)
        except OnlineStoreUnavailable as e:
            reason = str(e)
        else:
            if found is None:
                raise ClientNotFoundError(client_id)
            values, epoch = found
            as_of = as_of_date(epoch, timezone)
    response, inputs = compute(served, client_id, values, as_of, reason)
    return response, values, inputs
