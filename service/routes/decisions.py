"""Decisions: one client, a batch, lookup in the audit log, and replay."""

from __future__ import annotations

import json
import time

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from service import scope
from service.audited_decisions import active, audited_result, decide_and_audit, dumps
from service.decisions import Served, compute, decide_many
from service.deps import Compliance, FrontOffice, RuntimeDep
from service.errors import ApiError, ClientNotFoundError, DecisionNotFoundError
from service.keys import Caller
from service.lifecycle import Departure
from service.runtime import Runtime
from service.schemas import (
    MAX_BATCH,
    AuditRecord,
    BatchRequest,
    BatchResponse,
    DecisionRequest,
    DecisionResponse,
    ErrorResponse,
    ReplayResponse,
)

router = APIRouter(prefix="/v1/decisions", tags=["decisions"])
ERRORS = {401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}, 422: {"model": ErrorResponse}}


def _json(body: dict, status: int = 200) -> Response:
    return Response(dumps(body), status, media_type="application/json")


@router.post("", response_model=DecisionResponse, responses={**ERRORS, 404: {"model": ErrorResponse}},
             summary="Decide for one client")
async def post_decision(body: DecisionRequest, who: FrontOffice, runtime: RuntimeDep) -> Response:
    """Tier, service package, actions, alerts, scores and reasons for one client, from its current indicators,
    the champion models and the active ruleset. Rules only (`degraded: true`) when the online store is down."""
    _, text = decide_and_audit(runtime, who, body.client_id, body.model_dump())
    return Response(text, media_type="application/json")


@router.post("/batch", response_model=BatchResponse, responses=ERRORS, summary="Decide for up to 1,000 clients")
async def post_batch(body: BatchRequest, who: FrontOffice, runtime: RuntimeDep) -> Response:
    """One decision per client id, in order; an unknown client gets an error item instead of a decision. The
    clients are read in one round trip and scored together; each decision is audited on its own."""
    if len(body.client_ids) > MAX_BATCH:
        raise ApiError("batch_too_large", f"a batch holds at most {MAX_BATCH} client ids; got {len(body.client_ids)}")
    await runtime.charge(who, len(body.client_ids) - 1)  # a batch counts as its clients (the request counted one)
    served = active(runtime)

    def run() -> list[dict]:
        started = time.perf_counter()
        visible = scope.visible_clients(who, body.client_ids, runtime.directory)
        asked = [c for c, seen in zip(body.client_ids, visible, strict=True) if seen]
        decided = iter(decide_many(served, asked, runtime.settings.timezone) if asked else [])
        results = [next(decided) if seen else ClientNotFoundError(c)
                   for c, seen in zip(body.client_ids, visible, strict=True)]
        items = []
        for client_id, result in zip(body.client_ids, results, strict=True):
            if isinstance(result, ApiError):
                items.append({"client_id": client_id, "error": {"code": result.code, "message": result.message}})
            else:
                response, _ = audited_result(runtime, who, {"client_id": client_id}, result, started)
                items.append({"client_id": client_id, "decision": response})
        return items

    return _json({"decisions": await run_in_threadpool(run)})


def _record(runtime: Runtime, who: Caller, decision_id: str) -> dict:
    """The audit record, if the caller may see its client (else 404 ``decision_not_found``, as if missing)."""
    row = runtime.audit.get(decision_id)
    if row is None or not scope.may_see_client(who, row["client_id"], runtime.directory):
        raise DecisionNotFoundError(decision_id)
    out = dict(row)
    for name in ("model_versions", "request", "features", "rule_inputs", "response"):
        if isinstance(out[name], str):
            out[name] = json.loads(out[name])  # records written before orjson may hold NaN
    out["outcomes"] = runtime.outcomes.for_decision(decision_id)
    return out


@router.get("/{decision_id}", response_model=AuditRecord, responses={**ERRORS, 404: {"model": ErrorResponse}},
            summary="A recorded decision")
async def get_decision(decision_id: str, who: Compliance, runtime: RuntimeDep) -> Response:
    """The audit record: caller's key id, request, indicator values, model versions, ruleset hash, outputs,
    reasons and latency."""
    return _json(_record(runtime, who, decision_id))


_COMPARED = ("tier", "package", "actions", "alerts", "scores", "reasons", "versions", "degraded", "lifecycle", "arm")


@router.post("/{decision_id}/replay", response_model=ReplayResponse,
             responses={**ERRORS, 404: {"model": ErrorResponse}}, summary="Recompute a recorded decision")
async def replay(decision_id: str, who: Compliance, runtime: RuntimeDep) -> Response:
    """Recompute with the recorded indicator values, model versions and ruleset version; report differences."""
    record = _record(runtime, who, decision_id)
    recorded = record["response"]

    def run() -> dict:
        versions = record["model_versions"]
        snapshot = Served(runtime.models_for(versions) if versions else None,
                          runtime.ruleset_for(record["ruleset_version"]), None, runtime.vocabulary)
        lifecycle = recorded.get("lifecycle") or {}
        departure = (Departure(lifecycle.get("last_active") or "", lifecycle["cause"], lifecycle.get("closed_on"))
                     if lifecycle.get("stage") == "lost" and lifecycle.get("last_active") else None)
        again, _ = compute(snapshot, record["client_id"], record["features"], recorded.get("as_of"),
                           recorded.get("degraded_reason"), departure, recorded.get("arm"))
        return {**again, "versions": {**again["versions"], "models": versions}}

    again = await run_in_threadpool(run)
    differences = [{"field": f, "recorded": recorded.get(f), "replayed": again.get(f)}
                   for f in _COMPARED if recorded.get(f) != again.get(f)]
    return _json({"decision_id": decision_id, "identical": not differences, "differences": differences,
                  "replayed": again})
