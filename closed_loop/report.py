"""The closed loop's HTML report: the policies side by side (net gain, clients lost, actions and cost)."""

from __future__ import annotations

import base64
import io
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from closed_loop.loop import LoopRun

COLOURS = {"none": "#9e9e9e", "random": "#8d6e63", "rules": "#1f77b4", "uplift": "#2ca02c", "oracle": "#d62728"}


def _chart(run: LoopRun) -> str:
    """Four bar charts, one bar per policy, as a base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result = run.as_json()["policies"]
    names = list(result)
    colours = [COLOURS.get(n, "#555555") for n in names]
    panels = (("net_gain_vs_none_yuan", "Net gain vs no action (million yuan)", 1e-6),
              ("clients_lost", "Clients lost", 1.0),
              ("actions_delivered", "Actions delivered", 1.0),
              ("cost_yuan", "Cost of the actions (thousand yuan)", 1e-3))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8))
    for ax, (key, title, scale) in zip(axes, panels, strict=True):
        values = [(result[n][key] or 0.0) * scale for n in names]
        bars = ax.bar(names, values, color=colours)
        ax.set_title(title, fontsize=10)
        ax.tick_params(axis="x", labelrotation=30, labelsize=9)
        for bar, value in zip(bars, values, strict=True):
            ax.annotate(f"{value:,.2f}" if scale != 1.0 else f"{value:,.0f}", (bar.get_x() + bar.get_width() / 2,
                        bar.get_height()), ha="center", va="bottom", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def write_report(run: LoopRun, path: Path) -> Path:
    """Write the report to ``path`` (one self-contained HTML file)."""
    env = Environment(loader=PackageLoader("closed_loop", "templates"), autoescape=select_autoescape())
    html = env.get_template("closed_loop.html").render(run=run, result=run.as_json(), chart=_chart(run))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path
