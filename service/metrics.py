"""Prometheus metrics of the API: requests, latency, decisions by tier, lifecycle stage and experiment arm, actions
and alerts proposed, next best actions per arm, degraded decisions, the live distribution of every score, the
audit backlog, the journal's size and the models' drift.

With several workers, prometheus_client's multiprocess mode adds up every worker's values at ``/metrics``: `crm
serve` sets ``CRM_METRICS_DIR`` and prometheus_client's own variables before the workers start. (Feast sets
prometheus_client's variables for itself at import, so they alone do not say which mode this process is in.)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

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
ACTIONS = Counter("crm_actions_total", "Actions proposed by decisions, by action.", ["action"])
DECISION_ALERTS = Counter("crm_decision_alerts_total", "Alerts raised by decisions, by alert.", ["alert"])
STAGES = Counter("crm_decisions_by_stage_total", "Decisions made, by the client's lifecycle stage (new, active, "
                 "at_risk, dormant, lost).", ["stage"])
ARMS = Counter("crm_decisions_by_arm_total", "Decisions made, by experiment arm (champion, holdout, challenger).",
               ["arm"])
NEXT_BEST = Counter("crm_next_best_actions_total", "Next best actions offered after arbitration, by experiment arm "
                    "and action.", ["arm", "action"])
# Each worker's own queue; the multiprocess collector adds the live workers' values up.
AUDIT_BACKLOG = Gauge("crm_audit_backlog", "Audit records answered but not yet written to the audit database.",
                      multiprocess_mode="livesum")
JOURNAL_OUTSTANDING = Gauge("crm_journal_outstanding_records",
                            "Journalled audit records whose database write is not confirmed yet.",
                            multiprocess_mode="livesum")
EVENTS = Counter("crm_client_events_total", "Client events by outcome: accepted, duplicate, applied.", ["outcome"])
ALERTS = Counter("crm_event_alerts_total", "Alerts raised by event-triggered rule tables.")
RELOADS = Counter("crm_reloads_total", "Model or ruleset reloads, by outcome.", ["outcome"])


def observe_decision(response: dict) -> None:
    DECISIONS.labels(str(response["tier"])).inc()
    for action in response.get("actions") or ():
        ACTIONS.labels(str(action)).inc()
    for alert in response.get("alerts") or ():
        DECISION_ALERTS.labels(str(alert)).inc()
    arm = str(response.get("arm"))
    ARMS.labels(arm).inc()
    STAGES.labels(str((response.get("lifecycle") or {}).get("stage"))).inc()
    for chosen in response.get("next_best_actions") or ():
        NEXT_BEST.labels(arm, str(chosen["action"])).inc()
    scores = response["scores"]
    if response["degraded"]:
        DEGRADED.inc()
    if scores is None:  # degraded, or a closed account decided from the register of departures alone
        return
    if scores["churn"] is not None:  # scored for active and at-risk clients only
        CHURN.observe(scores["churn"]["probability"])
    VALUE.observe(scores["value"]["percentile"])
    RISK.labels(scores["risk_profile"]["class"]).inc()


def observe_audit(backlog: int, journal_outstanding: int) -> None:
    """This worker's audit queue and unconfirmed journal records (after each decision and every few seconds)."""
    AUDIT_BACKLOG.set(backlog)
    JOURNAL_OUTSTANDING.set(journal_outstanding)


DRIFT_BANDS = {"stable": 0, "watch": 1, "act": 2}


class StateCollector:
    """Figures read from files at each scrape, the same whichever worker answers: the journal's bytes on disk and
    the latest drift report written by `crm models drift` (``monitoring/drift.json`` in CRM_HOME)."""

    def __init__(self, journal_dir: Path | None, drift_file: Path | None) -> None:
        self.journal_dir = journal_dir
        self.drift_file = drift_file

    def describe(self) -> list:
        return []  # nothing at registration time: the files are read per scrape

    def collect(self):
        size = GaugeMetricFamily("crm_journal_bytes", "Bytes of audit journal segments on disk (records the audit "
                                 "database may not have yet).")
        total = 0
        if self.journal_dir is not None and self.journal_dir.exists():
            total = sum(p.stat().st_size for p in self.journal_dir.glob("*") if p.is_file())
        size.add_metric([], total)
        yield size
        score = GaugeMetricFamily("crm_model_drift_score_psi", "PSI of each champion's score, latest drift report.",
                                  labels=["model"])
        worst = GaugeMetricFamily("crm_model_drift_max_indicator_psi",
                                  "Largest PSI among each champion's input indicators, latest drift report.",
                                  labels=["model"])
        level = GaugeMetricFamily("crm_model_drift_band", "Drift band of each champion: 0 stable (PSI < 0.1), "
                                  "1 watch (0.1-0.25), 2 act (> 0.25).", labels=["model"])
        for entry in self._drift():
            model = str(entry["model"])
            score.add_metric([model], float(entry["score_psi"]))
            worst.add_metric([model], max(entry["indicators"].values(), default=0.0))
            level.add_metric([model], DRIFT_BANDS[entry["band"]])
        yield score
        yield worst
        yield level

    def _drift(self) -> list[dict]:
        if self.drift_file is None or not self.drift_file.exists():
            return []
        try:
            return list(json.loads(self.drift_file.read_text()))
        except (OSError, ValueError):
            return []  # a report being replaced is read at the next scrape


_state: StateCollector | None = None


def watch_state(journal_dir: Path, drift_file: Path) -> None:
    """Export the journal's size and the drift report of this CRM_HOME (called once per worker at start)."""
    global _state
    if _state is None:
        _state = StateCollector(journal_dir, drift_file)
    else:
        _state.journal_dir, _state.drift_file = journal_dir, drift_file


def exposition() -> bytes:
    if os.environ.get("CRM_METRICS_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY

        registry = CollectorRegistry()
        registry.register(_Everything(REGISTRY))
    if _state is not None:
        registry.register(_state)
    return generate_latest(registry)


class _Everything:
    """The process's default registry seen through a scrape-time registry that also holds the state collector."""

    def __init__(self, source) -> None:
        self.source = source

    def describe(self) -> list:
        return []

    def collect(self):
        return self.source.collect()
