"""The work queue of a broker, and of a branch manager with the branch's brokers' completion (front office)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

from fastapi import APIRouter, Query, Response

from service.deps import FrontOfficeOrManager, RuntimeDep
from service.queue import branch_queue, broker_queue
from service.schemas import ErrorResponse, QueueResponse
from service.scope import may_see

router = APIRouter(prefix="/v1/queue", tags=["queue"])
ERRORS = {401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}, 404: {"model": ErrorResponse},
          422: {"model": ErrorResponse}}
ID = r"^[A-Za-z0-9_\-]{1,32}$"


@router.get("", response_model=QueueResponse, responses=ERRORS, summary="A broker's work queue")
async def get_queue(who: FrontOfficeOrManager, runtime: RuntimeDep,
                    broker_id: Annotated[str, Query(pattern=ID, description="The broker, e.g. K00012.")],
                    date: Annotated[dt.date | None, Query(description="The day (default today, Asia/Shanghai)."
                                                          )] = None) -> Response:
    """Today's next best actions for the broker's clients, ranked by priority across clients, within each
    action's daily capacity, without actions done (reached, declined, accepted) or suppressed after a decline."""
    return Response(json.dumps(broker_queue(runtime, who, broker_id, date), ensure_ascii=False),
                    media_type="application/json")


@router.get("/branch", responses=ERRORS, summary="A branch manager's queue and the branch's completion")
async def get_branch_queue(who: FrontOfficeOrManager, runtime: RuntimeDep,
                           branch_id: Annotated[str, Query(pattern=ID, description="The branch.")],
                           date: Annotated[dt.date | None, Query()] = None) -> Response:
    """The branch manager's own actions and, per broker of the branch, planned, open and done actions."""
    return Response(json.dumps(branch_queue(runtime, who, branch_id, date), ensure_ascii=False),
                    media_type="application/json")


scorecards_router = APIRouter(prefix="/v1/scorecards", tags=["queue"])


@scorecards_router.get("/brokers", responses=ERRORS, summary="Broker scorecards with the closed loop's figures")
async def get_broker_scorecards(who: FrontOfficeOrManager, runtime: RuntimeDep) -> Response:
    """Every broker's indicators with actions recommended and delivered, reach rate, at-risk clients kept and lost
    clients won back."""
    from starlette.concurrency import run_in_threadpool

    from features.scorecards import broker_scorecards, records
    from features.store.feature_store import offline_dir
    from service.loop_figures import LOOP_FILE, write_broker_loop

    def run() -> list[dict]:
        settings = runtime.settings
        offline = offline_dir(settings.features_dir)
        write_broker_loop(settings.home, settings.raw_dir, offline, runtime.db)
        frame = broker_scorecards(offline, settings.raw_dir, settings.home / LOOP_FILE)
        return [r for r in records(frame) if may_see(who, runtime.directory, broker_id=r["broker_id"])]

    return Response(_json_nan_safe(await run_in_threadpool(run)), media_type="application/json")


def _json_nan_safe(rows: list[dict]) -> str:
    """JSON without NaN (a reach rate with no outcome yet is null)."""
    import math

    clean = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]
    return json.dumps({"brokers": clean}, ensure_ascii=False, default=str)
