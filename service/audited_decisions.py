"""A decision handed to the caller and the audit log together: the one way the API, the web pages and the work
queue's planner make an audited decision."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import orjson

from service import metrics, scope
from service.audit import new_decision_id
from service.decisions import Served, decide
from service.errors import ApiError
from service.keys import Caller
from service.runtime import Runtime

_LENIENT = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def dumps(value: object) -> str:
    """Compact UTF-8 JSON with orjson (a tenth of the json module's time for a decision's texts); keys that are
    str subclasses (SQLAlchemy's column names) and numpy scalars take orjson's slower lenient path. NaN becomes
    null."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return orjson.dumps(value, option=_LENIENT).decode()


def audited_result(runtime: Runtime, who: Caller, request: dict, result: tuple, started: float) -> tuple[dict, str]:
    """The decision with its id and timing, and its JSON text (serialised once, for the caller and the audit
    record), handed to the audit log."""
    response, values, inputs = result
    decision_id = new_decision_id()
    latency_ms = round((time.perf_counter() - started) * 1000, 3)
    decided_at = datetime.now(UTC).isoformat(timespec="milliseconds")
    response = {"decision_id": decision_id, "decided_at": decided_at, **response, "latency_ms": latency_ms}
    text = dumps(response)
    runtime.audit.record({
        "decision_id": decision_id, "decided_at": decided_at, "key_id": who.key_id,
        "client_id": response["client_id"], "degraded": response["degraded"], "latency_ms": latency_ms,
        "ruleset_version": response["versions"]["ruleset"], "model_versions": dumps(response["versions"]["models"]),
        "request": dumps(request), "features": dumps(values), "rule_inputs": dumps(inputs), "response": text,
    })
    metrics.observe_decision(response)
    return response, text


def active(runtime: Runtime) -> Served:
    served = runtime.served
    if served is None:
        raise ApiError("no_active_ruleset", "no ruleset is active; the API cannot decide yet")
    return served


def decide_and_audit(runtime: Runtime, who: Caller, client_id: str, request: dict) -> tuple[dict, str]:
    """One client's decision, audited: the response and its JSON text. A client outside the caller's scope is
    answered like a missing one (404 ``client_not_found``)."""
    started = time.perf_counter()
    scope.ensure_client(who, client_id, runtime.directory)
    result = decide(active(runtime), client_id, runtime.settings.timezone)
    return audited_result(runtime, who, request, result, started)
