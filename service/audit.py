"""The audit log, written off the request path without losing a record.

A request calls :meth:`AuditLog.record` before it answers: the record goes to the local journal
(:mod:`service.journal`, on disk when the call returns) and to a queue; one writer thread inserts queued records in
batches and then tells the journal they are in the database. A batch that fails (database restarting, locked) is
kept and retried until it is written. At start, the journal segments of processes that died (SIGKILL, a crash) are
adopted and their records written first, so a record is never lost between the response and the database. At
shutdown the writer drains the queue; whatever still cannot be written stays in the journal for the next start
(records a database refuses outright are kept in ``audit-spill/rejected-*`` for a person to look at).

Any kind of record can be audited this way: a kind names its table (:data:`TABLES`; ``"decision"`` →
``decisions``). To audit a new kind, add its table to :mod:`service.db` with a single-column primary key, register
it with :func:`register_kind`, and call ``runtime.audit.record(row, kind="outcome")`` before answering.
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
from service.journal import Journal

log = logging.getLogger("crm.audit")
BATCH = 500
FLUSH_S = 0.02
TABLES: dict[str, sa.Table] = {"decision": decisions}


def register_kind(kind: str, table: sa.Table) -> None:
    """Audit records of ``kind`` go into ``table`` (created by :func:`service.db.make_engine` like the others)."""
    if len(table.primary_key.columns) != 1:
        raise ValueError(f"table {table.name} needs a single-column primary key to be audited")
    TABLES[kind] = table


class Entry:
    """One queued record: its kind, its row and the journal segment holding it (None when not journalled)."""

    __slots__ = ("kind", "row", "segment")

    def __init__(self, kind: str, row: dict, segment: int | None) -> None:
        self.kind, self.row, self.segment = kind, row, segment

    @property
    def key(self) -> tuple[str, str]:
        return self.kind, self.row[TABLES[self.kind].primary_key.columns[0].name]


def new_decision_id() -> str:
    """Time-ordered unique id: milliseconds since the epoch, then 76 random bits (Python's generator, seeded from
    the OS in each worker process: uuid4 asked the OS for fresh bytes per decision, a system call each time)."""
    return f"{int(time.time() * 1000):013x}{random.getrandbits(76):019x}"


class AuditLog:
    """The audit writer of one worker. ``journal`` None (tests of the writer alone) skips the journal."""

    def __init__(self, engine: sa.Engine, spill_dir: Path, journal: Journal | None = None) -> None:
        self.engine = engine
        self.spill_dir = spill_dir
        self.journal = journal
        self._mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._queue: collections.deque[Entry] = collections.deque()
        self._pending: dict[tuple[str, str], dict] = {}  # queued or being written, for lookups before they land
        self.written = 0
        self.failures = 0
        self.replayed = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._recover_spill()
        self._replay_journal()
        self._thread.start()

    # request side ---------------------------------------------------------------------------------------

    def record(self, row: dict, kind: str = "decision") -> None:
        """Journal the record and queue it for the database; call it before answering the request."""
        segment = self.journal.append(kind, row) if self.journal is not None else None
        entry = Entry(kind, row, segment)
        # Two GIL-atomic operations and no lock or wake-up: the writer collects on its own cadence.
        self._pending[entry.key] = row
        self._queue.append(entry)

    @property
    def backlog(self) -> int:
        return len(self._pending)

    def get(self, decision_id: str) -> dict | None:
        row = self._pending.get(("decision", decision_id))
        if row is not None:
            return row
        return self.get_written(decision_id)

    def count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(decisions)).scalar_one()

    # writer side ----------------------------------------------------------------------------------------

    def _take(self) -> list[Entry]:
        batch: list[Entry] = []
        while self._queue and len(batch) < BATCH:
            batch.append(self._queue.popleft())
        return batch

    def _run(self) -> None:
        # Every FLUSH_S, whatever has been queued goes in one transaction: at most 1/FLUSH_S commits a second
        # whatever the load, and a request never wakes this thread.
        batch: list[Entry] = []
        while not self._stopping.is_set() or self._queue or batch:
            if not batch:
                self._stopping.wait(FLUSH_S)
                batch = self._take()
            if batch:
                batch = self._write(batch)
                if batch and self._stopping.is_set() and self._give_up_at < time.monotonic():
                    # Shutting down and the database is unreachable: the records stay in the journal (or, not
                    # journalled, in a spill file) and are written at the next start.
                    while self._queue:
                        batch.append(self._queue.popleft())
                    unjournalled = [e for e in batch if e.segment is None]
                    if unjournalled:
                        self._spill(unjournalled)
                    log.error("audit database unreachable at shutdown: %s records left in the journal for the "
                              "next start", len(batch) - len(unjournalled))
                    batch = []

    def _sql(self, kind: str) -> tuple[str, list[str]]:
        table = TABLES[kind]
        columns = [c.name for c in table.columns]
        return (f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join([self._mark] * len(columns))})",
                columns)

    def _insert(self, conn: sa.Connection, rows: list[Entry]) -> None:
        # Straight to the driver: SQLAlchemy's per-row parameter processing cost more than the decision.
        by_kind: dict[str, list[dict]] = {}
        for entry in rows:
            by_kind.setdefault(entry.kind, []).append(entry.row)
        for kind, kind_rows in by_kind.items():
            sql, columns = self._sql(kind)
            conn.exec_driver_sql(sql, [tuple(row.get(c) for c in columns) for row in kind_rows])

    def _write(self, batch: list[Entry] | list[dict]) -> list[Entry]:
        """Insert a batch; returns what is still unwritten (empty on success). Plain dicts are decisions."""
        batch = [e if isinstance(e, Entry) else Entry("decision", e, None) for e in batch]
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

    def _write_one_by_one(self, batch: list[Entry]) -> list[Entry]:
        for k, entry in enumerate(batch):
            try:
                try:
                    with self.engine.begin() as conn:
                        self._insert(conn, [entry])
                except IntegrityError as e:
                    if not self._exists(entry.kind, [entry.key[1]]):  # not a duplicate: it cannot be written
                        self._spill([entry], "rejected")
                        log.error("audit record %s %s refused by the database (kept in %s): %s", entry.kind,
                                  entry.key[1], self.spill_dir, e)
            except Exception as e:  # noqa: BLE001 - the database went away meanwhile: keep the rest and retry
                self._written(batch[:k])
                return self._failed(batch[k:], e)
        self._written(batch)
        return []

    def _failed(self, batch: list[Entry], error: Exception) -> list[Entry]:
        self.failures += 1
        log.warning("audit write failed (%s records kept, retrying): %s", len(batch), error)
        time.sleep(min(1.0, 0.05 * self.failures))
        return batch

    def _written(self, batch: list[Entry]) -> None:
        self.failures = 0
        for entry in batch:
            self._pending.pop(entry.key, None)
        if self.journal is not None:
            self.journal.done(e.segment for e in batch)
        self.written += len(batch)

    def _exists(self, kind: str, keys: list[str]) -> set[str]:
        """Which of these primary keys the database already holds."""
        table = TABLES[kind]
        column = table.primary_key.columns[0]
        found: set[str] = set()
        with self.engine.connect() as conn:
            for start in range(0, len(keys), 500):
                found.update(conn.execute(sa.select(column).where(column.in_(keys[start:start + 500]))).scalars())
        return found

    def _replay_journal(self) -> None:
        """Queue the records of journal segments left by processes that died; those already in the database (the
        writer committed them but the process died before the segment was deleted) are only acknowledged."""
        if self.journal is None:
            return
        for orphan in self.journal.adopt_orphans():
            entries = [Entry(kind, row, orphan.segment) for kind, row in orphan.records if kind in TABLES]
            unknown = len(orphan.records) - len(entries)
            if unknown:  # a kind this build does not know: kept aside, never dropped
                self._spill([Entry(k, r, None) for k, r in orphan.records if k not in TABLES], "unknown-kind")
                self.journal.done([orphan.segment] * unknown)
            try:
                present: set[tuple[str, str]] = set()
                for kind in {e.kind for e in entries}:
                    keys = [e.key[1] for e in entries if e.kind == kind]
                    present.update((kind, k) for k in self._exists(kind, keys))
            except Exception as e:  # noqa: BLE001 - database down at start: queue everything, duplicates are skipped
                log.warning("journal replay: could not ask the database what it holds (%s)", e)
                present = set()
            done = [e for e in entries if e.key in present]
            self.journal.done(e.segment for e in done)
            for entry in entries:
                if entry.key not in present:
                    self._pending[entry.key] = entry.row
                    self._queue.append(entry)
                    self.replayed += 1

    def get_written(self, decision_id: str) -> dict | None:
        """The record as the database holds it (not what is still queued)."""
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(decisions).where(decisions.c.decision_id == decision_id)).first()
        return dict(found._mapping) if found is not None else None

    def _spill(self, batch: list[Entry] | list[dict], kind: str = "audit") -> Path:
        """Save records as JSON lines: ``audit-*`` (unjournalled decisions unwritten at shutdown, loaded at the
        next start), ``rejected-*`` (refused by the database) or ``unknown-kind-*`` (a record kind this build has
        no table for), the last two kept for a person to look at."""
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        path = self.spill_dir / f"{kind}-{new_decision_id()}.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for entry in batch:
                row = entry.row if isinstance(entry, Entry) else entry
                line = row if kind == "audit" else {"kind": getattr(entry, "kind", "decision"), "record": row}
                f.write(json.dumps(line, ensure_ascii=False) + "\n")
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
        if self.journal is not None:
            self.journal.close()
