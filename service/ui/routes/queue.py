"""Pages of the closed loop: a broker's work queue (one click records an outcome), a branch's queues and their
completion for the branch manager, and the experiment report."""

from __future__ import annotations

import datetime as dt
import time
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from service.errors import ApiError, DecisionNotFoundError
from service.keys import Role
from service.queue import branch_queue, broker_queue
from service.scope import may_see
from service.ui.session import UI, AnyViewer, PageError, Viewer, checked_form, page
from service.ui.templating import render

router = APIRouter(prefix=UI, include_in_schema=False)
QueueViewer = Annotated[Viewer, Depends(page(Role.FRONT_OFFICE, Role.BRANCH_MANAGER))]
STATUS_BUTTONS = (("reached", "Reached"), ("accepted", "Accepted"), ("declined", "Declined"),
                  ("not_reached", "Not reached"))
_REPORT: dict[str, tuple[float, dict]] = {}
REPORT_TTL_S = 60.0


def _day(text: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if text else None
    except ValueError:
        return None


@router.get("/queue", response_class=HTMLResponse)
def queue_page(request: Request, viewer: QueueViewer, broker_id: str = "", branch_id: str = "",
               date: str = "", recorded: str = "") -> Response:
    runtime = request.app.state.runtime
    queue = branch = error = None
    try:
        if broker_id:
            queue = broker_queue(runtime, viewer.caller, broker_id.strip(), _day(date))
        elif branch_id:
            branch = branch_queue(runtime, viewer.caller, branch_id.strip(), _day(date))
    except ApiError as e:
        error = (e.code, e.message)
    return render(request, "queue.html", viewer, broker_id=broker_id, branch_id=branch_id, date=date, queue=queue,
                  branch=branch, error=error, buttons=STATUS_BUTTONS, recorded=recorded)


@router.post("/queue/outcome")
async def record_outcome(request: Request, viewer: QueueViewer) -> Response:
    """One click on the queue: the outcome goes through the same checks and store as the API's."""
    fields = await checked_form(request, viewer)
    runtime = request.app.state.runtime
    if fields.get("status") not in {b for b, _ in STATUS_BUTTONS}:
        raise PageError("request_invalid", "status must be reached, accepted, declined or not_reached", viewer)
    try:
        offered = runtime.outcomes.offered(fields.get("decision_id", ""))
        if not may_see(viewer.caller, runtime.directory, client_id=offered.client_id):
            raise DecisionNotFoundError(fields.get("decision_id", ""))
        runtime.outcomes.record(fields.get("decision_id", ""), fields.get("action", ""), fields.get("status", ""),
                                None, fields.get("by") or viewer.caller.name, datetime.now(UTC),
                                viewer.caller.key_id)
    except ApiError as e:
        raise PageError(e.code, e.message, viewer) from None
    back = {k: fields[k] for k in ("broker_id", "branch_id", "date") if fields.get(k)}
    back["recorded"] = f"{fields.get('action')} {fields.get('status')} for {fields.get('client_id', '')}"
    return RedirectResponse(f"{UI}/queue?{urlencode(back)}", status_code=303)


@router.get("/experiments", response_class=HTMLResponse)
def experiments_page(request: Request, viewer: AnyViewer) -> Response:
    from service.nba_cli import experiment_figures

    home = str(request.app.state.runtime.settings.home)
    hit = _REPORT.get(home)
    if hit is None or time.monotonic() - hit[0] > REPORT_TTL_S:
        hit = (time.monotonic(), experiment_figures(request.app.state.runtime.settings))
        _REPORT[home] = hit
    return render(request, "experiments.html", viewer, report=hit[1])
