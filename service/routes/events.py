"""Client events: intake over HTTP, and the alerts they trigger (a list and a server-sent event stream)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from features.events.contract import MAX_EVENTS_PER_REQUEST, EventBatch
from service import scope
from service.deps import FrontOffice, Ingest, RuntimeDep
from service.errors import ApiError
from service.schemas import AlertList, ErrorResponse, EventsAccepted

router = APIRouter(tags=["events"])
ERRORS = {401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}, 413: {"model": ErrorResponse},
          422: {"model": ErrorResponse}}
STREAM_POLL_S = 0.05
HEARTBEAT_S = 15.0


@router.post("/v1/events", status_code=202, response_model=EventsAccepted, responses=ERRORS,
             summary=f"Accept up to {MAX_EVENTS_PER_REQUEST:,} client events")
async def post_events(body: EventBatch, who: Ingest, runtime: RuntimeDep) -> Response:
    """Cash transfers, trades, complaints filed or resolved and contacts, each a row of its raw table with an
    `event_id`. Stored in the append-only journal before the answer (202), then applied to the client's indicators
    in the online store within about a second and checked by the event-triggered rules. An event id seen before
    is accepted once and listed in `duplicates`. While the online store is down events are still accepted (202,
    `online_store: unavailable`) and applied when it returns; `/readyz` reports the backlog."""
    if len(body.events) > MAX_EVENTS_PER_REQUEST:
        raise ApiError("batch_too_large",
                       f"a request holds at most {MAX_EVENTS_PER_REQUEST} events; got {len(body.events)}")
    result = await run_in_threadpool(runtime.events.accept, body.events, f"http:{who.key_id}")
    return Response(json.dumps(result), 202, media_type="application/json")


def _within_scope(who: scope.Scoped, directory: scope.Directory, broker_id: str | None, branch_id: str | None
                  ) -> tuple[str | None, str | None] | None:
    """The broker and branch filters narrowed to what ``who`` may see, or None when the asked broker or branch is
    outside the caller's scope (nothing to show, answered like a broker or branch without alerts)."""
    own = who.scope
    if own.firm_wide:
        return broker_id, branch_id
    if branch_id is not None and not scope.may_see_branch(who, branch_id):
        return None
    if broker_id is not None and not scope.may_see_broker(who, broker_id, directory):
        return None
    return broker_id or own.broker_id, branch_id or own.branch_id


def _visible(who: scope.Scoped, directory: scope.Directory, alerts: list[dict]) -> list[dict]:
    """The alerts about clients ``who`` may see (the broker and branch an alert was stored with may have changed)."""
    if who.scope.firm_wide:
        return alerts
    return [a for a, ok in zip(alerts, scope.visible_clients(who, (a["client_id"] for a in alerts), directory),
                               strict=True) if ok]


@router.get("/v1/alerts", response_model=AlertList, responses=ERRORS, summary="Alerts raised by client events")
async def get_alerts(who: FrontOffice, runtime: RuntimeDep,
                     broker_id: Annotated[str | None, Query(max_length=64)] = None,
                     branch_id: Annotated[str | None, Query(max_length=64)] = None,
                     after: Annotated[int, Query(ge=0, description="Only alerts after this position.")] = 0,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Response:
    """Event-triggered alerts in the order raised, optionally for one broker or branch (the work queue's source)."""
    narrowed = _within_scope(who, runtime.directory, broker_id, branch_id)
    found = [] if narrowed is None else _visible(
        who, runtime.directory, await run_in_threadpool(runtime.events.alerts_after, after, *narrowed, limit))
    return Response(json.dumps({"alerts": found}, ensure_ascii=False), media_type="application/json")


@router.get("/v1/alerts/stream", responses=ERRORS, response_class=StreamingResponse,
            summary="Event-triggered alerts as server-sent events")
async def alert_stream(request: Request, who: FrontOffice, runtime: RuntimeDep,
                       broker_id: Annotated[str | None, Query(max_length=64)] = None,
                       branch_id: Annotated[str | None, Query(max_length=64)] = None,
                       after: Annotated[int | None, Query(ge=0, description="Replay alerts after this position; "
                                                          "default: only new ones.")] = None,
                       last_event_id: Annotated[str | None, Header()] = None) -> StreamingResponse:
    """`text/event-stream`: one `alert` event per new alert (its `id` is its position, so a reconnecting client
    resumes with `Last-Event-ID`), optionally only a broker's or a branch's; a comment every 15 s keeps the
    connection open."""
    events = runtime.events
    narrowed = _within_scope(who, runtime.directory, broker_id, branch_id)
    if last_event_id is not None and last_event_id.isdigit():
        position = int(last_event_id)
    elif after is not None:
        position = after
    else:
        position = await run_in_threadpool(events.latest_alert_seq)

    async def stream() -> AsyncIterator[str]:
        nonlocal position
        yield ": alerts\n\n"
        quiet = 0.0
        while not await request.is_disconnected():
            found = [] if narrowed is None else await run_in_threadpool(events.alerts_after, position, *narrowed)
            if found:
                position = found[-1]["seq"]
            for alert in _visible(who, runtime.directory, found):
                yield f"id: {alert['seq']}\nevent: alert\ndata: {json.dumps(alert, ensure_ascii=False)}\n\n"
            if found:
                quiet = 0.0
                continue
            await asyncio.sleep(STREAM_POLL_S)
            quiet += STREAM_POLL_S
            if quiet >= HEARTBEAT_S:
                quiet = 0.0
                yield ": still here\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
