"""Prometheus metrics of the API: requests, latency, degraded decisions and score distributions per model.

With several workers, prometheus_client's multiprocess mode adds up every worker's values at ``/metrics``: `crm
serve` sets ``CRM_METRICS_DIR`` and prometheus_client's own variables before the workers start. (Feast sets
prometheus_client's variables for itself at import, so they alone do not say which mode this process is in.)
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

REQUESTS = Counter("crm_requests_total", "HTTP requests by route and status.", ["route", "status"])
LATENCY = Histogram("crm_request_latency_seconds", "Request latency by route.", ["route"],
                    buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0, 5.0))
DECISIONS = Counter("crm_decisions_total", "Decisions made, by tier.", ["tier"])
DEGRADED = Counter("crm_degraded_decisions_total", "Rules-only decisions made without features or scores.")
CHURN = Histogram("crm_churn_probability", "Churn probability of decided clients.",
                  buckets=(0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0))
VALUE = Histogram("crm_value_percentile", "Value percentile of decided clients.",
                  buckets=(10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99, 100))
RISK = Counter("crm_risk_profile_total", "Risk profile class of decided clients.", ["risk_class"])
EVENTS = Counter("crm_client_events_total", "Client events by outcome: accepted, duplicate, applied.", ["outcome"])
ALERTS = Counter("crm_event_alerts_total", "Alerts raised by event-triggered rule tables.")
RELOADS = Counter("crm_reloads_total", "Model or ruleset reloads, by outcome.", ["outcome"])


def observe_decision(response: dict) -> None:
    DECISIONS.labels(str(response["tier"])).inc()
    scores = response["scores"]
    if response["degraded"] or scores is None:
        DEGRADED.inc()
        return
    CHURN.observe(scores["churn"]["probability"])
    VALUE.observe(scores["value"]["percentile"])
    RISK.labels(scores["risk_profile"]["class"]).inc()


def exposition() -> bytes:
    if os.environ.get("CRM_METRICS_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY)
