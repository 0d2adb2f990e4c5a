"""Models for data scientists: champion and challenger of each model, key metrics and evaluation plots."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from service.ui.session import UI, DataScientistViewer, PageError
from service.ui.templating import SECURITY_HEADERS, render

router = APIRouter(prefix=f"{UI}/models", include_in_schema=False)
PLOT = re.compile(r"^[A-Za-z0-9_.-]{1,80}\.png$")
RUN = re.compile(r"^[A-Za-z0-9]{1,64}$")


@router.get("", response_class=HTMLResponse)
def models(request: Request, viewer: DataScientistViewer) -> Response:
    return render(request, "models.html", viewer, cards=request.app.state.ui.models())


@router.get("/plots/{run_id}/{name}")
def plot(request: Request, run_id: str, name: str, viewer: DataScientistViewer) -> Response:
    png = request.app.state.ui.plot(run_id, name) if RUN.match(run_id) and PLOT.match(name) else None
    if png is None:
        raise PageError("not_found", f"no plot {name} in run {run_id}", viewer)
    return Response(png, media_type="image/png",
                    headers={**SECURITY_HEADERS, "Cache-Control": "private, max-age=3600"})
