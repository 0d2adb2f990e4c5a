"""Why behaviour reads riskier than the questionnaire: the indicators that point above the stated class, in words.

Compliance must reclassify a client (and tell him) when what it knows of him changes; an alert it can act on
names the evidence. The risk-profile model's version carries, for every indicator that moves with the risk it
reads, the direction and the median among the clients it reads in each class (its serving metadata,
``mismatch_evidence``). A client's indicator is evidence when it lies on the riskier side of the median of the
stated class, at least half-way to the median of the class his behaviour reads as; the strongest few, measured in
the indicator's quartile spread, are named.
"""

from __future__ import annotations

from collections.abc import Mapping

from features.indicators.compute import catalog

EVIDENCE_TOP = 3
_INDICATORS = {i.name: i for i in catalog()}


def _fmt(value: float, unit: str) -> str:
    text = f"{value:,.2f}" if abs(value) >= 100 else f"{value:.3g}"
    return f"{text} {unit}" if unit and unit not in ("flag", "category") else text


def mismatch_evidence(values: Mapping[str, object], reference: Mapping[str, Mapping], stated_class: str,
                      behaviour_class: str, top: int = EVIDENCE_TOP) -> list[dict]:
    """The indicators, strongest first, that point from ``stated_class`` towards the riskier ``behaviour_class``:
    ``{"indicator", "value", "stated_class_median", "behaviour_class_median", "text"}``."""
    found = []
    for name, ref in reference.items():
        value = values.get(name)
        if not isinstance(value, int | float) or isinstance(value, bool) or value != value:
            continue
        medians = ref.get("class_medians", {})
        low, high = medians.get(stated_class), medians.get(behaviour_class)
        if low is None or high is None:
            continue
        direction = float(ref["direction"])
        # The indicator must separate the two classes the right way, and the client must be past half-way.
        if direction * (high - low) <= 0 or direction * (value - (low + high) / 2) < 0:
            continue
        strength = direction * (value - low) / (float(ref.get("spread") or 0.0) or abs(high - low))
        found.append((strength, name, float(value), float(low), float(high)))
    out = []
    for _, name, value, low, high in sorted(found, reverse=True)[:top]:
        meta = _INDICATORS.get(name)
        unit = meta.unit if meta else ""
        text = (f"{name} = {_fmt(value, unit)}"
                + (f" ({meta.zh})" if meta else "")
                + f": clients whose behaviour reads {behaviour_class} have a median of {_fmt(high, unit)}, "
                  f"those who read {stated_class} {_fmt(low, unit)}"
                + (f". {meta.formula}" if meta else ""))
        out.append({"indicator": name, "value": round(value, 6), "stated_class_median": round(low, 6),
                    "behaviour_class_median": round(high, 6), "text": text})
    return out
