"""The decision audit log, written off the request path without losing a record.

A request hands its record to a queue and returns; one writer thread inserts queued records in batches. A batch
that fails (database restarting, locked) is kept and retried until it is written. At shutdown the writer drains
the queue; whatever still cannot be written is saved to ``audit-spill/`` as JSON lines and loaded back at the next
start, so a record is never lost between the response and the database.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import random
import threading
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from service.db import decisions

log = logging.getLogger("crm.audit")
BATCH = 500
FLUSH_S = 0.02


def new_decision_id() -> str:
    """Time-ordered unique id: milliseconds since the epoch, then 76 random bits (Python's generator, seeded from
    the OS in each worker process: uuid4 asked the OS for fresh bytes per decision, a system call each time)."""
    return f"{int(time.time() * 1000):013x}{random.getrandbits(76):019x}"


class AuditLog:
    def __init__(self, engine: sa.Engine, spill_dir: Path) -> None:
        self.engine = engine
        self.spill_dir = spill_dir
        self._columns = [c.name for c in decisions.columns]
        mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._sql = (f"INSERT INTO decisions ({', '.join(self._columns)}) "
                     f"VALUES ({', '.join([mark] * len(self._columns))})")
        self._queue: collections.deque[dict] = collections.deque()
        self._pending: dict[str, dict] = {}  # queued or being written, for lookups before they land
        self.written = 0
        self.failures = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._recover_spill()
        self._thread.start()

    # request side ---------------------------------------------------------------------------------------

    def record(self, row: dict) -> None:
        # Two GIL-atomic operations and no lock or wake-up: the writer collects on its own cadence.
        self._pending[row["decision_id"]] = row
        self._queue.append(row)

    @property
    def backlog(self) -> int:
        return len(self._pending)

    def get(self, decision_id: str) -> dict | None:
        row = self._pending.get(decision_id)
        if row is not None:
            return row
        return self.get_written(decision_id)

    def count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(decisions)).scalar_one()

    # writer side ----------------------------------------------------------------------------------------

    def _take(self) -> list[dict]:
        batch = []
        while self._queue and len(batch) < BATCH:
            batch.append(self._queue.popleft())
        return batch

    def _run(self) -> None:
        # Every FLUSH_S, whatever has been queued goes in one transaction: at most 1/FLUSH_S commits a second
        # whatever the load, and a request never wakes this thread.
        batch: list[dict] = []
        while not self._stopping.is_set() or self._queue or batch:
            if not batch:
                self._stopping.wait(FLUSH_S)
                batch = self._take()
            if batch:
                batch = self._write(batch)
                if batch and self._stopping.is_set() and self._give_up_at < time.monotonic():
                    while self._queue:  # shutting down and the database is unreachable: keep every record
                        batch.append(self._queue.popleft())
                    self._spill(batch)
                    batch = []

    def _insert(self, conn: sa.Connection, rows: list[dict]) -> None:
        # Straight to the driver: SQLAlchemy's per-row parameter processing cost more than the decision.
        conn.exec_driver_sql(self._sql, [tuple(row[c] for c in self._columns) for row in rows])

    def _write(self, batch: list[dict]) -> list[dict]:
        """Insert a batch; returns what is still unwritten (empty on success)."""
        try:
            with self.engine.begin() as conn:
                self._insert(conn, batch)
        except IntegrityError:
            # Some rows were written before (a retry after a lost commit): write the others one by one.
            return self._write_one_by_one(batch)
        except Exception as e:  # noqa: BLE001 - the database is down or busy: keep the batch and retry
            return self._failed(batch, e)
        self._written(batch)
        return []

    def _write_one_by_one(self, batch: list[dict]) -> list[dict]:
        for k, row in enumerate(batch):
            try:
                try:
                    with self.engine.begin() as conn:
                        self._insert(conn, [row])
                except IntegrityError as e:
                    if self.get_written(row["decision_id"]) is None:  # not a duplicate: it cannot be written
                        self._spill([row], "rejected")
                        log.error("audit record %s refused by the database (kept in %s): %s", row["decision_id"],
                                  self.spill_dir, e)
            except Exception as e:  # noqa: BLE001 - the database went away meanwhile: keep the rest and retry
                self._written(batch[:k])
                return self._failed(batch[k:], e)
        self._written(batch)
        return []

    def _failed(self, batch: list[dict], error: Exception) -> list[dict]:
        self.failures += 1
        log.warning("audit write failed (%s records kept, retrying): %s", len(batch), error)
        time.sleep(min(1.0, 0.05 * self.failures))
        return batch

    def _written(self, batch: list[dict]) -> None:
        self.failures = 0
        for row in batch:
            self._pending.pop(row["decision_id"], None)
        self.written += len(batch)

    def get_written(self, decision_id: str) -> dict | None:
        """The record as the database holds it (not what is still queued)."""
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(decisions).where(decisions.c.decision_id == decision_id)).first()
        return dict(found._mapping) if found is not None else None

    def _spill(self, batch: list[dict], kind: str = "audit") -> Path:
        """Save records as JSON lines: ``audit-*`` (unwritten at shutdown, loaded at the next start) or
        ``rejected-*`` (refused by the database, kept for a person to look at)."""
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        path = self.spill_dir / f"{kind}-{new_decision_id()}.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for row in batch:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        if kind == "audit":
            log.error("audit database unreachable at shutdown: %s records saved to %s", len(batch), path)
        return path

    def _recover_spill(self) -> None:
        if not self.spill_dir.exists():
            return
        for path in sorted(self.spill_dir.glob("audit-*.jsonl")):
            # Claim the file first: with several workers, each starts here and only one may load a file.
            claimed = path.with_name(f"{path.name}.loading-{os.getpid()}")
            try:
                path.rename(claimed)
            except FileNotFoundError:
                continue
            rows = [json.loads(line) for line in claimed.read_text(encoding="utf-8").splitlines() if line]
            if self._write(rows):
                claimed.rename(path)  # still unwritten: left for the next start
            else:
                claimed.unlink()

    def close(self, timeout_s: float = 30.0) -> None:
        """Write everything queued (retrying up to ``timeout_s``), then stop."""
        self._give_up_at = time.monotonic() + timeout_s
        self._stopping.set()
        self._thread.join(timeout_s + 5)
