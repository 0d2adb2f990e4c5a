"""The event journal: every accepted client event, once, in the order accepted, never changed or removed.

One SQLite database in ``$CRM_HOME/events/`` (WAL mode, shared by every API worker and consumer of the
machine). The journal table refuses updates and deletes (triggers); an ``event_id`` seen before is not stored
again. The same database holds what applying the journal needs — how far it has been applied, the online as-of
date, and each touched client's recent history — so an application and its progress mark commit together.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from features.events.contract import _Event

SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    client_id TEXT NOT NULL,
    event_date TEXT NOT NULL,
    body TEXT NOT NULL,
    accepted_at TEXT NOT NULL,
    source TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS journal_client ON journal (client_id);
CREATE TRIGGER IF NOT EXISTS journal_no_update BEFORE UPDATE ON journal
BEGIN SELECT RAISE(ABORT, 'the event journal is append-only'); END;
CREATE TRIGGER IF NOT EXISTS journal_no_delete BEFORE DELETE ON journal
BEGIN SELECT RAISE(ABORT, 'the event journal is append-only'); END;
CREATE TABLE IF NOT EXISTS progress (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS seeded (
    client_id TEXT PRIMARY KEY, opened_on TEXT NOT NULL, assets REAL NOT NULL,
    broker_id TEXT, branch_id TEXT
);
CREATE TABLE IF NOT EXISTS history (
    kind TEXT NOT NULL, row_key TEXT NOT NULL, client_id TEXT NOT NULL, day TEXT,
    a TEXT, b TEXT, x REAL, y REAL, n INTEGER,
    PRIMARY KEY (kind, row_key)
);
DROP INDEX IF EXISTS history_client;
-- A client's rows in key order, with every column (the fresh indicators read nothing else): see features.events.fresh.
CREATE INDEX IF NOT EXISTS history_by_client ON history (client_id, kind, row_key, day, a, b, x, y, n);
"""


class JournalUnavailable(Exception):
    """The event journal cannot be written (disk full, database locked for too long)."""

    code = "events_not_stored"


@dataclass(frozen=True)
class Appended:
    """What became of a batch: ids stored now, ids seen before, and the journal position covering them all."""

    accepted: list[str]
    duplicates: list[str]
    last_seq: int


@dataclass(frozen=True)
class JournalRow:
    seq: int
    event_id: str
    kind: str
    client_id: str
    event_date: dt.date
    body: dict

    @property
    def day(self) -> dt.date:
        return self.event_date


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


class Journal:
    """The journal database of one ``CRM_HOME`` (one connection per thread)."""

    def __init__(self, events_dir: Path, busy_timeout_s: float = 10.0) -> None:
        self.events_dir = Path(events_dir)
        self.events_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.events_dir / "events.db"
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        conn = self.connection()
        conn.executescript(SCHEMA)

    def connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")  # an accepted event survives a power cut
            # Clients' histories are read and written a few thousand clients at a time: a page cache of 64 MiB
            # instead of SQLite's 2 MiB keeps their pages in memory between rounds.
            conn.execute("PRAGMA cache_size = -65536")
            self._local.conn = conn
        return conn

    def append(self, events: Sequence[_Event], source: str) -> Appended:
        """Store the events not seen before, in one transaction; raises JournalUnavailable if it cannot."""
        conn = self.connection()
        ids = [e.event_id for e in events]
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                seen: dict[str, int] = {}
                for start in range(0, len(ids), 500):
                    part = ids[start:start + 500]
                    seen.update(conn.execute(f"SELECT event_id, seq FROM journal WHERE event_id IN "
                                             f"({','.join('?' * len(part))})", part).fetchall())
                accepted, duplicates, rows = [], [], []
                stamp = _now()
                for event in events:
                    if event.event_id in seen:
                        duplicates.append(event.event_id)
                        continue
                    seen[event.event_id] = 0
                    accepted.append(event.event_id)
                    rows.append((event.event_id, event.kind, event.client_id,  # type: ignore[attr-defined]
                                 event.date.isoformat(), event.raw_json(), stamp, source))
                conn.executemany("INSERT INTO journal (event_id, kind, client_id, event_date, body, accepted_at, "
                                 "source) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
                last = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM journal").fetchone()[0]
                conn.execute("COMMIT")
                covering = max([seen[i] for i in duplicates] + ([last] if accepted else []), default=0)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise JournalUnavailable(f"the event journal {self.path} cannot be written: {e}") from e
        return Appended(accepted, duplicates, covering)

    # progress ----------------------------------------------------------------------------------------------

    def progress(self, name: str, conn: sqlite3.Connection | None = None) -> str | None:
        row = (conn or self.connection()).execute("SELECT value FROM progress WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def set_progress(self, conn: sqlite3.Connection, name: str, value: str) -> None:
        conn.execute("INSERT INTO progress (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET "
                     "value = excluded.value", (name, value))

    def note_failure(self, error: str | None) -> None:
        """Record (or, with None, clear) why applying failed, for every worker's readiness report."""
        conn = self.connection()
        if error is None:
            conn.execute("DELETE FROM progress WHERE name = 'apply_failure'")
        else:
            self.set_progress(conn, "apply_failure", json.dumps({"at": _now(), "error": error}))

    def failure(self) -> dict | None:
        text = self.progress("apply_failure")
        return json.loads(text) if text else None

    def applied_seq(self, conn: sqlite3.Connection | None = None) -> int:
        return int(self.progress("applied_seq", conn) or 0)

    def last_seq(self) -> int:
        return self.connection().execute("SELECT COALESCE(MAX(seq), 0) FROM journal").fetchone()[0]

    def backlog(self) -> int:
        """Accepted events not yet applied to the online store."""
        conn = self.connection()
        return conn.execute("SELECT COUNT(*) FROM journal WHERE seq > ?", (self.applied_seq(conn),)).fetchone()[0]

    def pending(self, conn: sqlite3.Connection, after: int, limit: int) -> list[JournalRow]:
        rows = conn.execute("SELECT seq, event_id, kind, client_id, event_date, body FROM journal WHERE seq > ? "
                            "ORDER BY seq LIMIT ?", (after, limit)).fetchall()
        # One parse for the whole batch: a JSON array of the bodies (a parse per body costs more than the reading).
        bodies = json.loads(f"[{','.join(row[5] for row in rows)}]")
        return [JournalRow(seq, event_id, kind, client_id, dt.date.fromisoformat(day), body)
                for (seq, event_id, kind, client_id, day, _), body in zip(rows, bodies, strict=True)]

    def recent(self, client_id: str, limit: int = 20) -> list[dict]:
        """A client's latest accepted events, newest first (for the client page)."""
        rows = self.connection().execute(
            "SELECT seq, event_id, kind, event_date, body, accepted_at FROM journal WHERE client_id = ? "
            "ORDER BY seq DESC LIMIT ?", (client_id, limit)).fetchall()
        applied = self.applied_seq()
        return [{"event_id": event_id, "kind": kind, "date": day, "fields": json.loads(body),
                 "accepted_at": accepted_at, "applied": seq <= applied}
                for seq, event_id, kind, day, body, accepted_at in rows]

    def all_rows(self) -> list[JournalRow]:
        conn = self.connection()
        return self.pending(conn, 0, 2**62)
