"""The indicator catalog, generated from the indicator definitions: markdown, HTML and JSON."""

from __future__ import annotations

import html

from features.indicators.compute import views
from features.indicators.definitions import FAMILY_ZH
from features.labels import LABELS
from features.model_features import FEATURE_SERVICES

_COLUMNS = ("name", "entity", "formula", "window", "unit", "zh", "type", "missing")


def catalog_rows() -> list[dict[str, str]]:
    """One object per indicator: name, family, entity, formula, window, unit, Chinese term, type, missing."""
    return [ind.as_row() for view in views() for ind in view.indicators]


def catalog_markdown() -> str:
    rows = catalog_rows()
    lines = ["# Indicator catalog", "",
             f"{len(rows)} indicators in {len(views())} feature views. Generated from `features/indicators/`; "
             "do not edit by hand.", ""]
    for view in views():
        lines += [f"## {view.family.value} — {FAMILY_ZH[view.family]} (entity: {view.entity})", "",
                  "| " + " | ".join(_COLUMNS) + " |", "|" + " --- |" * len(_COLUMNS)]
        for ind in view.indicators:
            row = ind.as_row()
            lines.append("| " + " | ".join(row[c].replace("|", "\\|") for c in _COLUMNS) + " |")
        lines.append("")
    lines += ["## Model labels", "", "Outcomes the models learn, read from observable raw data only.", "",
              "| label | model | horizon | unit | definition |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| `{lb.name}` | {lb.model} | {lb.horizon} | {lb.unit} | {lb.definition} |" for lb in LABELS]
    lines += ["", "## Feature services", ""]
    for name, spec in FEATURE_SERVICES.items():
        lines.append(f"- `{name}` (model `{spec['model']}`): {spec['description']} "
                     f"{len(spec['features'])} features.")  # type: ignore[arg-type]
    return "\n".join(lines) + "\n"


def catalog_html() -> str:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>Indicator catalog</title><style>"
             "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}"
             "td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top}th{background:#f3f3f3}</style>"
             "</head><body><h1>Indicator catalog</h1>",
             f"<p>{len(catalog_rows())} indicators in {len(views())} feature views.</p>"]
    for view in views():
        parts.append(f"<h2>{html.escape(view.family.value)} — {FAMILY_ZH[view.family]} "
                     f"<small>(entity: {view.entity})</small></h2><table><tr>")
        parts += [f"<th>{c}</th>" for c in _COLUMNS]
        parts.append("</tr>")
        for ind in view.indicators:
            row = ind.as_row()
            parts.append("<tr>" + "".join(f"<td>{html.escape(row[c])}</td>" for c in _COLUMNS) + "</tr>")
        parts.append("</table>")
    parts.append("<h2>Model labels</h2><table><tr><th>label</th><th>model</th><th>horizon</th><th>unit</th>"
                 "<th>definition</th></tr>")
    parts += [f"<tr><td>{lb.name}</td><td>{lb.model}</td><td>{html.escape(lb.horizon)}</td><td>{lb.unit}</td>"
              f"<td>{html.escape(lb.definition)}</td></tr>" for lb in LABELS]
    parts.append("</table></body></html>")
    return "".join(parts)
