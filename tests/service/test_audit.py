"""The audit writer keeps every record through database failures, including failures while it recovers."""

from __future__ import annotations

import time
from pathlib import Path

import sqlalchemy as sa

from service.audit import AuditLog, new_decision_id
from service.db import make_engine


def _record(client: str = "C0000001") -> dict:
    return {"decision_id": new_decision_id(), "decided_at": "2026-01-05T01:00:00.000+00:00", "key_id": "k1",
            "client_id": client, "degraded": False, "latency_ms": 1.0, "ruleset_version": "v",
            "model_versions": "{}", "request": "{}", "features": "{}", "rule_inputs": "{}", "response": "{}"}


class FlakyAuditLog(AuditLog):
    """The real writer over a real SQLite database, whose single-row inserts fail once with a lost connection
    (as when the database restarts while the writer is sorting out a partly written batch)."""

    single_row_failures = 0

    def _insert(self, conn: sa.Connection, rows: list[dict]) -> None:
        if len(rows) == 1 and self.single_row_failures:
            self.single_row_failures -= 1
            raise sa.exc.OperationalError("INSERT", {}, Exception("server closed the connection unexpectedly"))
        super()._insert(conn, rows)


def _wait_written(log: AuditLog, expected: int) -> None:
    deadline = time.monotonic() + 30
    while log.count() < expected and time.monotonic() < deadline:
        time.sleep(0.05)


def test_a_failure_while_rewriting_a_partly_written_batch_loses_nothing(tmp_path: Path) -> None:
    log = FlakyAuditLog(make_engine(f"sqlite:///{tmp_path / 'service.db'}"), tmp_path / "spill")
    written_before = _record()
    assert log._write([written_before]) == []  # in the database: the next batch holding it hits a duplicate key
    log.single_row_failures = 1
    batch = [written_before, _record(), _record(), _record()]
    kept = log._write(batch)
    assert [e.row for e in kept] == batch  # a single-row insert fails: what is not written is kept for a retry
    assert log._write(kept) == []  # the retry skips the duplicate and writes the rest
    assert log.count() == 4 and log._thread.is_alive()
    more = [_record() for _ in range(5)]
    for row in more:
        log.record(row)
    _wait_written(log, 9)
    log.close()
    assert log.count() == 9 and log.backlog == 0


def test_spilled_records_are_loaded_once_by_one_of_several_workers(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'service.db'}")
    first = AuditLog(engine, tmp_path / "spill")
    spilled = [_record() for _ in range(3)]
    first._spill(spilled)
    first.close()
    second, third = AuditLog(engine, tmp_path / "spill"), AuditLog(engine, tmp_path / "spill")  # two workers start
    assert second.count() == 3 and not list((tmp_path / "spill").glob("audit-*"))
    second.close()
    third.close()
