"""The decision API: an app factory taking its settings (and a runtime, in tests), error envelopes, body limits,
health, readiness and Prometheus metrics."""

from __future__ import annotations

import json
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from config import Settings, get_settings
from model_registry.errors import ModelRegistryError
from rules.errors import RulesError
from service import metrics, ui
from service.errors import ApiError, status_for
from service.limits import RateLimitedError
from service.routes import decisions, events, models, outcomes, queue, rulesets
from service.runtime import Runtime
from service.schemas import Health, Readiness

MAX_BODY = 64 * 1024
# A batch of 1,000 client events is about 250 KB of JSON.
BODY_LIMITS = {"/v1/events": 1024 * 1024}


def _error(code: str, message: str, status: int | None = None, fields: list | None = None,
           headers: dict | None = None) -> Response:
    body = {"error": {"code": code, "message": message, **({"fields": fields} if fields else {})}}
    return Response(json.dumps(body, ensure_ascii=False), status or status_for(code), headers=headers,
                    media_type="application/json")


class BodyLimit:
    """Refuse request bodies over the limit with 413 before the app reads them (declared or streamed)."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY, limits: dict[str, int] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.limits = limits if limits is not None else BODY_LIMITS

    async def _reject(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        await _error("body_too_large", f"request bodies are limited to {limit // 1024} KB")(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        limit = self.limits.get(scope["path"], self.limit)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > limit:
                return await self._reject(scope, receive, send, limit)
            return await self.app(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return await self._reject(scope, receive, send, limit)
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)


class Measure:
    """Request counts and latency per route for Prometheus (plain ASGI: Starlette's HTTP middleware costs more
    than a decision's rules)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            metrics.observe_request(getattr(route, "path", "unmatched"), status, time.perf_counter() - started)


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if runtime is None:
            app.state.runtime = Runtime(settings)
        import gc

        gc.collect()
        gc.freeze()  # the loaded models and tables never die: keep the collector from walking them
        yield
        if runtime is None:
            app.state.runtime.close()  # drains the audit queue: no record is lost at SIGTERM

    app = FastAPI(
        title="Brokerage client decision engine",
        version="1.0",
        description="Per-client decisions for front-office systems: service tier, package, actions, alerts, "
                    "churn/value/risk scores and reasons, audited and replayable. Authenticate with "
                    "`Authorization: Bearer KEY` (`crm keys create --role ROLE`).",
        lifespan=lifespan,
    )
    if runtime is not None:
        app.state.runtime = runtime

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        headers = {"WWW-Authenticate": "Bearer"} if exc.code == "unauthenticated" else None
        if isinstance(exc, RateLimitedError):
            headers = {"Retry-After": str(exc.retry_after_s)}
        return _error(exc.code, exc.message, headers=headers, fields=getattr(exc, "fields", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        fields = [{"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in exc.errors()]
        message = "; ".join(f"{f['field']}: {f['problem']}" for f in fields)
        code = "batch_too_large" if any(f["field"] in ("body.client_ids", "body.events") and "at most" in f["problem"]
                                        for f in fields) else "request_invalid"
        return _error(code, message or "the request is not valid", 422, fields)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(code, str(exc.detail), exc.status_code)

    async def domain_error(request: Request, exc: Exception) -> Response:
        return _error(getattr(exc, "code", "internal_error"), str(exc))

    for domain in (RulesError, ModelRegistryError):  # each carries its stable code
        app.add_exception_handler(domain, domain_error)

    app.include_router(decisions.router)
    app.include_router(outcomes.router)
    app.include_router(queue.router)
    app.include_router(queue.scorecards_router)
    app.include_router(models.router)
    app.include_router(rulesets.router)
    app.include_router(events.router)
    ui.install(app)  # the web pages under /ui, behind the same keys and roles

    @app.get("/healthz", response_model=Health, tags=["health"], summary="Alive")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", response_model=Readiness, tags=["health"], summary="Ready to decide",
             responses={503: {"model": Readiness}})
    def readyz(request: Request) -> Response:
        """Models loaded, rules compiled, online store and audit database reachable."""
        report = request.app.state.runtime.readiness()
        return Response(json.dumps(report), 200 if report["ready"] else 503, media_type="application/json")

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics", response_class=Response)
    async def prometheus(request: Request) -> Response:
        runtime = getattr(request.app.state, "runtime", None)
        if runtime is not None:
            runtime.observe()
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4")

    app.add_middleware(BodyLimit)
    app.add_middleware(Measure)
    return app
