"""The one map from domain error codes to HTTP statuses, and the API's own errors.

Every error response is ``{"error": {"code": ..., "message": ...}}`` with a stable code; packages raise their
own domain errors (each carries ``code``), and only this module decides what HTTP status a code means.
"""

from __future__ import annotations

STATUS_BY_CODE: dict[str, int] = {
    # API
    "unauthenticated": 401,
    "forbidden": 403,
    "client_not_found": 404,
    "decision_not_found": 404,
    "request_invalid": 422,
    "batch_too_large": 422,
    "action_not_offered": 422,
    "outcome_time_invalid": 422,
    "broker_not_found": 404,
    "queue_not_planned": 404,
    "body_too_large": 413,
    "not_found": 404,
    "method_not_allowed": 405,
    "not_ready": 503,
    "events_not_stored": 503,
    "rate_limited": 429,
    "internal_error": 500,
    # rules
    "rule_file_invalid": 422,
    "rules_input_invalid": 422,
    "hit_policy_violation": 500,
    "ruleset_version_not_found": 404,
    "approval_refused": 409,
    "activation_refused": 409,
    "no_active_ruleset": 503,
    "rule_history_tampered": 500,
    "ruleset_invalid": 422,
    # models
    "model_not_found": 503,
    "onnx_parity_failed": 409,
    "promotion_refused": 409,
}


class ApiError(Exception):
    """An error the API reports as is: a stable code, a status from the map and a message for the caller."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(message)


def status_for(code: str) -> int:
    return STATUS_BY_CODE.get(code, 500)


class ClientNotFoundError(ApiError):
    def __init__(self, client_id: str) -> None:
        super().__init__("client_not_found", f"no client {client_id!r} in the online store")


class DecisionNotFoundError(ApiError):
    def __init__(self, decision_id: str) -> None:
        super().__init__("decision_not_found", f"no decision {decision_id!r} in the audit log")
