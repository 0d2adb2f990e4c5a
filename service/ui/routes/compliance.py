"""Compliance pages: the active ruleset and its history; a version's tables, findings, diff against the active
version and impact over the client population; approve, reject or activate it (maker-checker, through the same
rule history as the API and the CLI)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from rules.errors import ApprovalRefusedError, RulesError
from rules.governance import Status
from service.ui import session
from service.ui.data import UiData
from service.ui.session import UI, ComplianceViewer, PageError, Viewer
from service.ui.templating import render

router = APIRouter(prefix=f"{UI}/compliance", include_in_schema=False)
DONE = {"approved": "Approved. It can now be activated.", "rejected": "Rejected; the reason is in the history.",
        "activated": "Activated: the API serves this version from now on (each worker within its reload interval)."}


def _data(request: Request) -> UiData:
    return request.app.state.ui


@router.get("", response_class=HTMLResponse)
def overview(request: Request, viewer: ComplianceViewer) -> Response:
    history = request.app.state.runtime.history
    try:
        states = history.states()
        events = history.events()
    except RulesError as e:
        raise PageError(e.code, str(e), viewer) from None
    active = next((s for s in states if s.active), None)
    names = {s.version: s.name for s in states}
    return render(request, "compliance.html", viewer, active=active, states=list(reversed(states)),
                  pending=[s for s in states if s.status == Status.SUBMITTED], events=list(reversed(events)),
                  names=names)


def _version_page(request: Request, viewer: Viewer, version: str, status: int = 200,
                  refusal: tuple[str, str] | None = None, note: str = "") -> Response:
    data = _data(request)
    history = request.app.state.runtime.history
    try:
        state = history.state(version)
        review = data.review(state.version)
        active = history.active_version()
        diff = data.diff(active, state.version) if active and active != state.version else None
        impact, impact_pending = (data.impact_if_ready(active, state.version) if active and active != state.version
                                  else (None, False))
        events = [e for e in history.events() if e.version == state.version]
    except RulesError as e:
        raise PageError(e.code, str(e), viewer) from None
    done = DONE.get(request.query_params.get("done", ""))
    return render(request, "ruleset.html", viewer, status, state=state, review=review, active=active, diff=diff,
                  impact=impact, impact_pending=impact_pending, events=events, done=done, refusal=refusal, note=note,
                  is_author=session.same_person(state.author, viewer.caller.name))


@router.get("/rulesets/{version}", response_class=HTMLResponse)
def version_page(request: Request, version: str, viewer: ComplianceViewer) -> Response:
    return _version_page(request, viewer, version)


@router.get("/rulesets/{version}/impact", response_class=HTMLResponse)
def impact_fragment(request: Request, version: str, viewer: ComplianceViewer) -> Response:
    """The impact section alone, for the version page to fetch when the simulation was still running."""
    history = request.app.state.runtime.history
    try:
        version = history.resolve(version)
        active = history.active_version()
        impact = _data(request).impact(active, version) if active and active != version else None
    except RulesError as e:
        raise PageError(e.code, str(e), viewer) from None
    return render(request, "_impact.html", viewer, impact=impact)


async def _act(request: Request, viewer: Viewer, version: str, action: str) -> Response:
    fields = await session.checked_form(request, viewer)
    if not viewer.scope.firm_wide:
        raise PageError("forbidden", f"Only a firm-wide key may {action} a ruleset; yours is scoped to "
                                     f"{viewer.scope.describe()}.", viewer)
    note = fields.get("note", "").strip()
    runtime = request.app.state.runtime
    by = viewer.caller.name  # the key's holder is the approver, exactly as over the API
    try:
        if action == "approve":
            event = await run_in_threadpool(runtime.history.approve, version, by, note)
        elif action == "reject":
            if not note:
                raise ApprovalRefusedError("a reason is required to reject: write it in the comment")
            event = await run_in_threadpool(runtime.history.reject, version, by, note)
        else:
            event = await run_in_threadpool(runtime.history.activate, version, by, note)
            await run_in_threadpool(runtime.reload)
    except RulesError as e:  # maker-checker refusals among them: shown on the version's page
        if e.code == "ruleset_version_not_found":
            raise PageError(e.code, str(e), viewer) from None
        return await run_in_threadpool(_version_page, request, viewer, version, 409, (e.code, str(e)), note)
    done = {"approve": "approved", "reject": "rejected", "activate": "activated"}[action]
    return RedirectResponse(f"{UI}/compliance/rulesets/{event.version}?done={done}", status_code=303)


@router.post("/rulesets/{version}/approve")
async def approve(request: Request, version: str, viewer: ComplianceViewer) -> Response:
    return await _act(request, viewer, version, "approve")


@router.post("/rulesets/{version}/reject")
async def reject(request: Request, version: str, viewer: ComplianceViewer) -> Response:
    return await _act(request, viewer, version, "reject")


@router.post("/rulesets/{version}/activate")
async def activate(request: Request, version: str, viewer: ComplianceViewer) -> Response:
    return await _act(request, viewer, version, "activate")
