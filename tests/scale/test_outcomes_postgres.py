"""Outcomes on PostgreSQL behave as on SQLite: stored once per decision, action and status, readable with the
decision, and seen by a second worker's contact history."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from service.audit import AuditLog, new_decision_id
from service.contact_history import ContactHistory
from service.db import make_engine
from service.errors import ApiError
from service.outcomes import Outcomes


def test_outcomes_are_idempotent_durable_and_shared_on_postgres(pg_url: str, tmp_path) -> None:
    engine = make_engine(pg_url)
    audit = AuditLog(engine, tmp_path / "spill")
    decision_id = new_decision_id()
    decided = datetime.now(UTC) - timedelta(minutes=5)
    offered = [{"action": "broker_retention_call", "channel": "phone"}]
    audit.record({"decision_id": decision_id, "decided_at": decided.isoformat(), "key_id": "k", "client_id": "C1",
                  "degraded": False, "latency_ms": 1.0, "ruleset_version": "v", "model_versions": "{}",
                  "request": "{}", "features": "{}", "rule_inputs": "{}",
                  "response": json.dumps({"next_best_actions": offered})})
    first, second = ContactHistory(), ContactHistory()
    worker_a = Outcomes(engine, audit, first, "Asia/Shanghai")
    worker_b = Outcomes(engine, audit, second, "Asia/Shanghai")
    row, new = worker_a.record(decision_id, "broker_retention_call", "declined", None, "K00001", datetime.now(UTC),
                               "k")
    assert new and row["channel"] == "phone"
    again, new = worker_b.record(decision_id, "broker_retention_call", "declined", None, "K00001",
                                 datetime.now(UTC), "k")
    assert not new and again["recorded_at"] == row["recorded_at"]
    with pytest.raises(ApiError) as refused:
        worker_a.record(decision_id, "senior_advisor_visit", "reached", None, "K00001", datetime.now(UTC), "k")
    assert refused.value.code == "action_not_offered"
    assert [(o["action"], o["status"]) for o in worker_b.for_decision(decision_id)] == [
        ("broker_retention_call", "declined")]
    assert [c.outcome for c in first.of("C1")] == ["declined"] and second.of("C1") == []
    assert worker_b.catch_up("") == 1 and [c.action for c in second.of("C1")] == ["broker_retention_call"]
    worker_a.close()
    worker_b.close()
    audit.close()
    engine.dispose()
