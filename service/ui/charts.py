"""Small charts as inline SVG, drawn on the server: no script, no external asset, crisp at any zoom.

Each function returns SVG markup (already escaped) that a template inserts with ``|safe``; every chart carries a
``<title>`` so screen readers and hover tooltips say what it shows.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

PALETTE = ("#2f6fb0", "#e07b39", "#3a9a5b", "#b04a6f", "#7a5cb8", "#8c8c8c")


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _finite(values: Sequence[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


def short_number(value: float) -> str:
    """1,234,567 → 1.23M; small numbers keep three significant digits."""
    a = abs(value)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if a >= limit:
            return f"{value / limit:.3g}{suffix}"
    if a == 0 or a >= 1:
        return f"{value:.3g}"
    return f"{value:.2g}"


def sparkline(values: Sequence[float | None], labels: Sequence[str] = (), width: int = 160, height: int = 34,
              title: str = "") -> str:
    """A line of monthly values with its last point marked; gaps stay gaps."""
    points = list(values)
    finite = _finite(points)
    if not finite:
        return f'<svg class="spark" width="{width}" height="{height}" role="img"><title>{_e(title)}: no values' \
               "</title></svg>"
    lo, hi = min(finite), max(finite)
    span = hi - lo or 1.0
    pad = 3
    n = len(points)

    def xy(i: int, v: float) -> tuple[float, float]:
        x = pad + (width - 2 * pad) * (i / (n - 1) if n > 1 else 0.5)
        y = height - pad - (height - 2 * pad) * ((v - lo) / span if hi > lo else 0.5)
        return round(x, 1), round(y, 1)

    segments, current = [], []
    for i, v in enumerate(points):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            if current:
                segments.append(current)
            current = []
            continue
        current.append(xy(i, float(v)))
    if current:
        segments.append(current)
    paths = "".join(f'<polyline points="{" ".join(f"{x},{y}" for x, y in s)}" fill="none" stroke="{PALETTE[0]}" '
                    'stroke-width="1.5"/>' for s in segments)
    last_i = max(i for i, v in enumerate(points) if v is not None and not (isinstance(v, float) and math.isnan(v)))
    lx, ly = xy(last_i, float(points[last_i]))  # type: ignore[arg-type]
    span_text = f"{labels[0]} – {labels[-1]}: " if labels else ""
    tip = f"{title}: {span_text}min {short_number(lo)}, max {short_number(hi)}, last {short_number(finite[-1])}"
    return (f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">'
            f"<title>{_e(tip)}</title>{paths}"
            f'<circle cx="{lx}" cy="{ly}" r="2.5" fill="{PALETTE[1]}"/></svg>')


def bars(labels: Sequence[str], series: dict[str, Sequence[float]], title: str, width: int = 560,
         unit: str = "", label_width: int = 190) -> str:
    """Horizontal bars, one group per label and one bar per series (a legend when more than one)."""
    names = list(series)
    rows = len(labels)
    bar_h = 12 if len(names) > 1 else 16
    group_h = bar_h * len(names) + 8
    top = 26 + (16 if len(names) > 1 else 0)
    height = top + rows * group_h + 22
    values = [v for s in series.values() for v in _finite(s)]
    hi = max([*values, 0.0])
    lo = min([*values, 0.0])
    span = (hi - lo) or 1.0
    plot_w = width - label_width - 70

    def x(v: float) -> float:
        return round(label_width + plot_w * (v - lo) / span, 1)

    parts = [f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">',
             f"<title>{_e(title)}</title>",
             f'<text x="4" y="16" class="chart-title">{_e(title)}</text>']
    if len(names) > 1:
        lx = label_width
        for k, name in enumerate(names):
            parts.append(f'<rect x="{lx}" y="26" width="10" height="10" fill="{PALETTE[k % len(PALETTE)]}"/>'
                         f'<text x="{lx + 14}" y="35" class="axis">{_e(name)}</text>')
            lx += 14 + 8 * len(name) + 16
    zero = x(0.0)
    for i, label in enumerate(labels):
        y0 = top + i * group_h
        parts.append(f'<text x="{label_width - 6}" y="{y0 + group_h / 2 + 3}" text-anchor="end" class="axis">'
                     f"{_e(label)}</text>")
        for k, name in enumerate(names):
            v = series[name][i]
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            x1, x2 = sorted((zero, x(float(v))))
            y = y0 + 4 + k * bar_h
            parts.append(f'<rect x="{x1}" y="{y}" width="{max(x2 - x1, 0.5)}" height="{bar_h - 2}" '
                         f'fill="{PALETTE[k % len(PALETTE)]}"><title>{_e(label)} — {_e(name)}: '
                         f"{_e(f'{v:,.4g}')}{_e(unit)}</title></rect>"
                         f'<text x="{x2 + 4}" y="{y + bar_h - 3}" class="value">{_e(short_number(float(v)))}</text>')
    parts.append(f'<line x1="{zero}" y1="{top - 2}" x2="{zero}" y2="{height - 20}" class="zero"/>')
    parts.append(f'<text x="{label_width}" y="{height - 6}" class="axis">{_e(short_number(lo))}{_e(unit)}</text>'
                 f'<text x="{label_width + plot_w}" y="{height - 6}" text-anchor="end" class="axis">'
                 f"{_e(short_number(hi))}{_e(unit)}</text></svg>")
    return "".join(parts)


def scatter(points: Sequence[tuple[float, float, str]], title: str, x_label: str, y_label: str,
            width: int = 560, height: int = 320) -> str:
    """Points (x, y, label) with axes from the data's range; the label is each point's tooltip."""
    xs = _finite([p[0] for p in points]) or [0.0]
    ys = _finite([p[1] for p in points]) or [0.0]
    x_lo, x_hi, y_lo, y_hi = min(xs), max(xs), min(ys), max(ys)
    x_pad, y_pad = (x_hi - x_lo) * 0.04, (y_hi - y_lo) * 0.06  # no dot sits on the frame
    x_lo, x_hi, y_lo, y_hi = x_lo - x_pad, x_hi + x_pad, y_lo - y_pad, y_hi + y_pad
    left, right, top, bottom = 56, 16, 28, 40
    pw, ph = width - left - right, height - top - bottom

    def px(v: float) -> float:
        return round(left + pw * ((v - x_lo) / ((x_hi - x_lo) or 1.0)), 1)

    def py(v: float) -> float:
        return round(top + ph - ph * ((v - y_lo) / ((y_hi - y_lo) or 1.0)), 1)

    parts = [f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">',
             f"<title>{_e(title)}</title>", f'<text x="4" y="16" class="chart-title">{_e(title)}</text>',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" class="frame"/>']
    for x, y, label in points:
        if x is None or y is None or (isinstance(x, float) and math.isnan(x)) or (isinstance(y, float) and
                                                                                    math.isnan(y)):
            continue
        parts.append(f'<circle cx="{px(x)}" cy="{py(y)}" r="3.5" fill="{PALETTE[0]}" fill-opacity="0.55">'
                     f"<title>{_e(label)}</title></circle>")
    parts += [
        f'<text x="{left}" y="{height - 22}" class="axis">{_e(short_number(x_lo))}</text>',
        f'<text x="{left + pw}" y="{height - 22}" text-anchor="end" class="axis">{_e(short_number(x_hi))}</text>',
        f'<text x="{left + pw / 2}" y="{height - 6}" text-anchor="middle" class="axis">{_e(x_label)}</text>',
        f'<text x="{left - 4}" y="{top + ph}" text-anchor="end" class="axis">{_e(short_number(y_lo))}</text>',
        f'<text x="{left - 4}" y="{top + 10}" text-anchor="end" class="axis">{_e(short_number(y_hi))}</text>',
        f'<text x="14" y="{top + ph / 2}" text-anchor="middle" class="axis" '
        f'transform="rotate(-90 14 {top + ph / 2})">{_e(y_label)}</text>',
        "</svg>",
    ]
    return "".join(parts)


def heat_color(value: float, highest: float) -> str:
    """A background for a matrix cell: white for nothing, deeper blue for more."""
    if highest <= 0 or value <= 0:
        return "#ffffff"
    share = math.sqrt(value / highest)  # square root: small off-diagonal moves stay visible
    r, g, b = (int(255 - (255 - c) * share) for c in (47, 111, 176))
    return f"#{r:02x}{g:02x}{b:02x}"
