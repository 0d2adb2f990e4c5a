"""Rulesets for compliance: the active version, the history, submit, approve, reject and activate."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from rules.analysis import validate
from rules.model import ruleset_from_canonical
from service.deps import Compliance, FirmCompliance, RuntimeDep
from service.errors import ApiError
from service.schemas import ActiveRuleset, ErrorResponse, HistoryEvent, Note, RulesetHistory, RulesetSubmission

router = APIRouter(prefix="/v1/rulesets", tags=["rulesets"])
ERRORS = {401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}, 404: {"model": ErrorResponse},
          409: {"model": ErrorResponse}, 422: {"model": ErrorResponse}}


@router.get("/active", response_model=ActiveRuleset, responses={**ERRORS, 503: {"model": ErrorResponse}},
            summary="The active ruleset")
def active(who: Compliance, runtime: RuntimeDep) -> dict:
    version = runtime.history.active_version()
    if version is None:
        raise ApiError("no_active_ruleset", "no ruleset version is active")
    state = runtime.history.state(version)
    spec = runtime.history.load(version)
    return {"version": version, "name": spec.name, "author": state.author, "approved_by": state.decided_by,
            "ruleset": spec.canonical()}


@router.get("", response_model=RulesetHistory, responses=ERRORS, summary="Versions and their history")
def history(who: Compliance, runtime: RuntimeDep) -> dict:
    return {"versions": [s.as_dict() for s in runtime.history.states()],
            "events": [e.as_dict() for e in runtime.history.events()]}


@router.post("", response_model=HistoryEvent, status_code=201, responses=ERRORS, summary="Submit a candidate")
def submit(body: RulesetSubmission, who: FirmCompliance, runtime: RuntimeDep) -> dict:
    """Validate and store a candidate ruleset; the caller is its author and cannot approve it."""
    try:
        spec = ruleset_from_canonical(body.ruleset)
    except ValidationError as e:
        raise ApiError("ruleset_invalid", f"the ruleset does not fit the rule-file format: {e.errors()[:3]}") from None
    findings = validate(spec, runtime.vocabulary)
    if findings:
        raise ApiError("ruleset_invalid", "; ".join(f.describe() for f in findings[:10]))
    return runtime.history.submit(spec, who.name, body.note).as_dict()


@router.post("/{version}/approve", response_model=HistoryEvent, responses=ERRORS, summary="Approve (maker-checker)")
def approve(version: str, body: Note, who: FirmCompliance, runtime: RuntimeDep) -> dict:
    return runtime.history.approve(version, who.name, body.note).as_dict()


@router.post("/{version}/reject", response_model=HistoryEvent, responses=ERRORS, summary="Reject with a reason")
def reject(version: str, body: Note, who: FirmCompliance, runtime: RuntimeDep) -> dict:
    if not body.note.strip():
        raise ApiError("request_invalid", "a reason (note) is required to reject")
    return runtime.history.reject(version, who.name, body.note).as_dict()


@router.post("/{version}/activate", response_model=HistoryEvent, responses=ERRORS, summary="Activate an approved one")
async def activate(version: str, body: Note, who: FirmCompliance, runtime: RuntimeDep) -> dict:
    event = runtime.history.activate(version, who.name, body.note).as_dict()
    await run_in_threadpool(runtime.reload)
    return event
