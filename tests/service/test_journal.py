"""The audit journal: what a process appended survives its SIGKILL and is written by the next one, once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import sqlalchemy as sa

from service.audit import AuditLog, new_decision_id
from service.db import decisions, make_engine
from service.journal import Journal, decode, encode


def _record(client: str = "C0000001") -> dict:
    return {"decision_id": new_decision_id(), "decided_at": "2026-01-05T01:00:00.000+00:00", "key_id": "k1",
            "client_id": client, "degraded": False, "latency_ms": 1.0, "ruleset_version": "v",
            "model_versions": "{}", "request": "{}", "features": "{}", "rule_inputs": "{}", "response": "{}"}


def _ids(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(decisions.c.decision_id)).scalars())


def _wait(predicate, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_records_appended_by_a_killed_process_are_written_at_the_next_start(tmp_path: Path) -> None:
    # A real process journals records whose database is unreachable (so none is written), prints their ids and
    # is killed with SIGKILL: the next AuditLog over the same journal writes every one of them.
    journal_dir = tmp_path / "journal"
    script = textwrap.dedent(f"""
        import json, sys, time
        from pathlib import Path
        from service.audit import AuditLog, new_decision_id
        from service.db import make_engine
        from service.journal import Journal, decode, encode
        engine = make_engine("sqlite:///{tmp_path / 'service.db'}")
        log = AuditLog(engine, Path("{tmp_path / 'spill'}"), Journal(Path("{journal_dir}")))
        log._stopping.set()  # the writer stops: nothing reaches the database before the kill
        log._thread.join()
        for k in range(200):
            row = json.loads({json.dumps(json.dumps(_record()))})
            row["decision_id"] = new_decision_id() + str(k)
            log.record(row)
            print(row["decision_id"], flush=True)
        print("done", flush=True)
        time.sleep(60)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                               cwd=Path(__file__).resolve().parents[2])
    answered = []
    for line in process.stdout:  # type: ignore[union-attr]
        if line.strip() == "done":
            break
        answered.append(line.strip())
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
    process.stdout.close()  # type: ignore[union-attr]
    assert len(answered) == 200
    engine = make_engine(f"sqlite:///{tmp_path / 'service.db'}")
    assert not _ids(engine) & set(answered)  # nothing was written before the kill

    log = AuditLog(engine, tmp_path / "spill", Journal(journal_dir))
    _wait(lambda: set(answered) <= _ids(engine))
    assert set(answered) <= _ids(engine)
    log.close()
    assert not list(journal_dir.glob("*.jsonl"))  # everything written: no segment left


def test_a_live_workers_segment_is_not_adopted_and_an_orphan_only_once(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'service.db'}")
    live = Journal(tmp_path / "journal")
    live.append("decision", _record())  # held by this (live) journal's lock
    assert Journal(tmp_path / "journal").adopt_orphans() == []

    # A segment nobody holds (its process died), with a last record cut short by the crash.
    rows = [_record() for _ in range(3)]
    orphan = tmp_path / "journal" / "4242-1-1.jsonl"
    orphan.write_bytes(b"".join(encode("decision", r) for r in rows) + encode("decision", _record())[:-40])
    first = AuditLog(engine, tmp_path / "spill", Journal(tmp_path / "journal"))
    second = AuditLog(engine, tmp_path / "spill", Journal(tmp_path / "journal"))
    _wait(lambda: {r["decision_id"] for r in rows} <= _ids(engine))
    assert first.replayed + second.replayed == 3
    first.close()
    second.close()
    assert not orphan.exists()
    assert len(_ids(engine)) == 3


def test_records_already_in_the_database_are_not_written_twice(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'service.db'}")
    rows = [_record() for _ in range(4)]
    writer = AuditLog(engine, tmp_path / "spill")
    assert writer._write(rows[:2]) == []  # committed, but the process died before the segment was deleted
    writer.close()
    orphan = tmp_path / "journal" / "4243-1-1.jsonl"
    orphan.parent.mkdir()
    orphan.write_bytes(b"".join(encode("decision", r) for r in rows))
    log = AuditLog(engine, tmp_path / "spill", Journal(tmp_path / "journal"))
    _wait(lambda: len(_ids(engine)) == 4)
    assert log.replayed == 2
    log.close()
    assert _ids(engine) == {r["decision_id"] for r in rows} and not orphan.exists()


def test_records_come_back_as_they_were_written() -> None:
    rows = [_record(), {**_record(), "response": '{"text": "换行\\n and \\"quotes\\""}', "degraded": True,
                        "latency_ms": 0.125, "ruleset_version": None}, {"outcome_id": "o1", "detail": {"a": [1, 2]}}]
    data = b"".join(encode("decision" if "decision_id" in r else "outcome", r) for r in rows)
    decoded, complete = decode(data)
    assert complete and [r for _, r in decoded] == rows and decoded[2][0] == "outcome"
    for cut in (1, 9, len(data) - len(encode("outcome", rows[2])) + 20, len(data) - 1):
        partial, complete = decode(data[:cut])
        assert not complete and [r for _, r in partial] == rows[:len(partial)]


def test_segments_rotate_and_written_ones_are_deleted(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'service.db'}")
    log = AuditLog(engine, tmp_path / "spill", Journal(tmp_path / "journal", fsync=True, segment_bytes=2_000))
    for _ in range(40):
        log.record(_record())
    _wait(lambda: log.backlog == 0)
    assert len(list((tmp_path / "journal").glob("*.jsonl"))) == 1  # only the current segment
    assert log.journal is not None and log.journal.outstanding == 0
    log.close()
    assert not list((tmp_path / "journal").glob("*.jsonl"))
    assert len(_ids(engine)) == 40
