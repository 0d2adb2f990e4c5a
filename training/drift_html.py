"""The drift report as one HTML file with a chart per champion (`crm models drift --html PATH`)."""

from __future__ import annotations

import base64
import html
import tempfile
from pathlib import Path

from training.drift import ACT_ABOVE, STABLE_BELOW, ModelDrift, band, psi_chart


def _chart(drift: ModelDrift) -> str:
    with tempfile.TemporaryDirectory() as folder:
        png = psi_chart(drift, Path(folder) / "chart.png").read_bytes()
    return f'<img alt="PSI of {html.escape(drift.model)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _section(drift: ModelDrift) -> str:
    p = drift.performance
    rows = "".join(f'<tr class="{band(v)}"><td>{html.escape(k)}</td><td>{v:.4f}</td><td>{band(v)}</td></tr>'
                   for k, v in sorted(drift.indicators.items(), key=lambda kv: -kv[1]))
    performance = "" if p is None else (
        f"<p>{html.escape(p.metric)}: test window {p.test_window} "
        f"{'—' if p.test_value is None else f'{p.test_value:.4f}'}; latest labelled window {p.latest_window} "
        f"{'—' if p.latest_value is None else f'{p.latest_value:.4f}'} ({p.latest_rows:,} client-months)</p>")
    return (f'<section><h2>{html.escape(drift.model)} v{drift.version}: <span class="{drift.band}">{drift.band}</span>'
            f"</h2><p>{html.escape(drift.current)} ({drift.current_rows:,} clients) against "
            f"{html.escape(drift.reference)} ({drift.reference_rows:,} client-months). Score PSI "
            f"{drift.score_psi:.4f} ({drift.score_band}).</p>{performance}{_chart(drift)}"
            f"<table><tr><th>indicator</th><th>PSI</th><th>band</th></tr>{rows}</table></section>")


def write_html(report: list[ModelDrift], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(_section(d) for d in report) or "<p>No champion is registered: run <code>crm train</code>.</p>"
    path.write_text(f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Model drift</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:60em}} table{{border-collapse:collapse}}
td,th{{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left}} .watch{{color:#a07000}} .act{{color:#c0392b}}
.stable{{color:#4c9a2a}}</style></head><body><h1>Model drift</h1>
<p>Population stability index (PSI) bands: below {STABLE_BELOW} stable, {STABLE_BELOW}–{ACT_ABOVE} watch, above
{ACT_ABOVE} act.</p>{body}</body></html>""", encoding="utf-8")
    return path
