"""Jinja2 templates of the web pages, their filters, and the one way a page is rendered."""

from __future__ import annotations

import datetime as dt
import math
import time
from pathlib import Path

from fastapi import Request
from starlette.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from service.keys import Role
from service.ui import charts
from service.ui.session import UI, Viewer

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")

# The navigation: (title, path, roles that may open it); admins see everything.
NAVIGATION = (
    ("Compliance", f"{UI}/compliance", (Role.COMPLIANCE,)),
    ("Client view", f"{UI}/clients", (Role.FRONT_OFFICE,)),
    ("Broker scorecards", f"{UI}/managers/brokers", (Role.BRANCH_MANAGER,)),
    ("Branch rankings", f"{UI}/managers/branches", (Role.BRANCH_MANAGER,)),
    ("Work queue", f"{UI}/queue", (Role.FRONT_OFFICE, Role.BRANCH_MANAGER)),
    ("Experiments", f"{UI}/experiments", (Role.FRONT_OFFICE, Role.BRANCH_MANAGER, Role.DATA_SCIENTIST,
                                          Role.COMPLIANCE)),
    ("Models", f"{UI}/models", (Role.DATA_SCIENTIST,)),
)


SECURITY_HEADERS = {
    "Cache-Control": "no-store",  # pages carry client data and CSRF tokens
    # No framing (the approve button cannot be clickjacked), scripts and styles from these pages only.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                               "script-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def _number(value: object, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:,.{digits}f}" if abs(value) >= 1 else f"{value:.{digits + 1}g}"
    return str(value)


def _percent(value: object, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    share = float(value) * 100  # type: ignore[arg-type]
    if share and abs(share) < 10 ** -digits:
        return f"{share:.2g}%"  # a tiny share (a branch's share of the whole market) keeps its digits
    return f"{share:.{digits}f}%"


def _when(value: object) -> str:
    """An ISO timestamp as people read it: 2026-11-25 14:51 UTC."""
    if not value:
        return "—"
    try:
        return dt.datetime.fromisoformat(str(value)).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return str(value)


def _indicator_value(value: object, unit: str = "") -> str:
    text = _number(value)
    return f"{text} {unit}" if unit and unit not in ("flag", "category", "") and text != "—" else text


templates.env.filters.update({
    "num": _number, "pct": _percent, "when": _when, "short": lambda v: str(v or "")[:12],
    "indicator": _indicator_value, "compact": charts.short_number,
})
templates.env.globals.update({"UI": UI, "charts": charts, "heat": charts.heat_color})


def render(request: Request, name: str, viewer: Viewer | None, status: int = 200, **context: object) -> HTMLResponse:
    """A page with the navigation its viewer may use and the time it took to render (also in Server-Timing)."""
    started = getattr(request.state, "ui_started", None) or time.perf_counter()
    nav = [(title, path) for title, path, roles in NAVIGATION if viewer is not None and viewer.may(*roles)]
    response = templates.TemplateResponse(request, name, {"viewer": viewer, "nav": nav, "path": request.url.path,
                                                          **context}, status_code=status)
    elapsed_ms = (time.perf_counter() - started) * 1000
    response.headers["Server-Timing"] = f"render;dur={elapsed_ms:.1f}"
    response.headers.update(SECURITY_HEADERS)
    return response
