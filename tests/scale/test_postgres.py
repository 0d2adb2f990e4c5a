"""The rule history and the audit log on PostgreSQL behave as on SQLite."""

from __future__ import annotations

import json
import time

import pytest
import sqlalchemy as sa

from rules.errors import ApprovalRefusedError, HistoryTamperedError
from rules.governance import RulesHistory
from rules.model import load_ruleset
from service.audit import AuditLog, new_decision_id
from service.db import make_engine


def test_maker_checker_and_tamper_detection_on_postgres(pg_url: str) -> None:
    history = RulesHistory(pg_url)
    spec = load_ruleset()
    history.submit(spec, "Wang Fang", "first policy")
    with pytest.raises(ApprovalRefusedError, match="maker-checker"):
        history.approve(spec.version, "Wang Fang")
    history.approve(spec.version, "Li Wei", "ok")
    history.activate(spec.version, "ops")
    assert history.active_version() == spec.version and history.verify() == []
    assert history.load(spec.version) == spec
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), history.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE ruleset_events SET actor = 'Wang Fang' WHERE action = 'approve'")
    with history.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE ruleset_events DISABLE TRIGGER ruleset_events_append_only")
        conn.exec_driver_sql("UPDATE ruleset_events SET actor = 'Zhao Min' WHERE action = 'approve'")
    assert any("altered" in p for p in history.verify())
    with pytest.raises(HistoryTamperedError):
        history.active_version()
    history.close()


def test_a_second_store_on_the_same_database_sees_the_same_history(pg_url: str) -> None:
    first, second = RulesHistory(pg_url), RulesHistory(pg_url)  # schema creation is idempotent
    spec = load_ruleset()
    first.submit(spec, "Wang Fang", "first policy")
    second.approve(spec.version, "Li Wei", "from another replica")
    assert [e.action for e in first.events()] == ["submit", "approve"]
    first.close()
    second.close()


def test_the_audit_log_writes_every_record_to_postgres(pg_url: str, tmp_path) -> None:
    engine = make_engine(pg_url)
    audit = AuditLog(engine, tmp_path / "spill")
    ids = []
    for k in range(1500):
        decision_id = new_decision_id()
        ids.append(decision_id)
        audit.record({"decision_id": decision_id, "decided_at": "2026-11-25T00:00:00+00:00", "key_id": "k",
                      "client_id": f"C{k:07d}", "degraded": False, "latency_ms": 1.0, "ruleset_version": "v",
                      "model_versions": "{}", "request": "{}", "features": "{}", "rule_inputs": "{}",
                      "response": json.dumps({"tier": "small"})})
    assert audit.get(ids[-1]) is not None  # readable before or after it lands
    audit.close()
    assert audit.count() == 1500 and not (tmp_path / "spill").exists()
    time.sleep(0)
    engine.dispose()
