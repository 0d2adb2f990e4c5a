"""Models: what is registered and served, and an immediate reload for data scientists."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from model_registry.specs import model_names
from service.deps import DataScientist, RuntimeDep
from service.schemas import ErrorResponse, ModelsResponse, ReloadResponse

router = APIRouter(prefix="/v1/models", tags=["models"])
ERRORS = {401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}}


@router.get("", response_model=ModelsResponse, responses=ERRORS, summary="Registered and served models")
def get_models(who: DataScientist, runtime: RuntimeDep) -> dict:
    """Every version of every model with aliases and metrics, and the version served here."""
    served = runtime.served
    serving = served.model_versions if served is not None else None
    return {"models": {name: {"serving_version": serving.get(name) if serving else None,
                              "versions": [v.as_dict() for v in runtime.registry.versions(name)]}
                       for name in model_names()},
            "problems": served.problems if served else []}


@router.post("/reload", response_model=ReloadResponse, responses=ERRORS, summary="Load the current champions now")
async def reload(who: DataScientist, runtime: RuntimeDep) -> dict:
    """Load the champion aliases and the active ruleset now (workers also look every few seconds). A version that
    fails to load or to check leaves the previous one serving; `problems` says why."""
    return await run_in_threadpool(runtime.reload)
