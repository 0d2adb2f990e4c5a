"""Outcomes: what happened to an action a decision offered (front office)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from fastapi import APIRouter, Response

from service.deps import FrontOffice, RuntimeDep
from service.errors import DecisionNotFoundError
from service.schemas import ErrorResponse, Outcome, OutcomeRequest
from service.scope import may_see

router = APIRouter(prefix="/v1/decisions", tags=["outcomes"])
ERRORS = {401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}, 404: {"model": ErrorResponse},
          422: {"model": ErrorResponse}}


@router.post("/{decision_id}/outcomes", response_model=Outcome, status_code=201,
             responses={**ERRORS, 200: {"model": Outcome, "description": "The same outcome was stored before."}},
             summary="Record an action's outcome")
async def post_outcome(decision_id: str, body: OutcomeRequest, who: FrontOffice, runtime: RuntimeDep) -> Response:
    """Record that an offered action was attempted, reached, declined, accepted or not reached. 404
    `decision_not_found` for an unknown decision, 422 `action_not_offered` for an action it did not offer, 422
    `outcome_time_invalid` for a time before the decision or in the future. Sending the same decision, action and
    status again is answered 200 with what was stored, and stored once."""
    offered = runtime.outcomes.offered(decision_id)
    if not may_see(who, runtime.directory, client_id=offered.client_id):
        raise DecisionNotFoundError(decision_id)
    store = runtime.outcomes
    row = store.prepare(decision_id, body.action, body.status, body.channel, body.by, body.at or datetime.now(UTC),
                        who.key_id)
    # Answered once the writer has committed it (with whatever else arrived meanwhile, in one transaction).
    stored, new = store.finish(row, await asyncio.wrap_future(store.submit(row)))
    return Response(json.dumps(stored, ensure_ascii=False), 201 if new else 200, media_type="application/json")
