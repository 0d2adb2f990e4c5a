"""Applies the journal to the online store: each client an event touches gets its fresh indicators rewritten.

A client's history (its transfers, trades and contacts of the last 365 days before the batch as-of date, every
complaint, its opening date and month-end assets) is read once from the raw tables, the first time an event
touches it, and kept beside the journal with every event applied since. One process of the home at a time applies
(a file lock): it adds the pending events to their clients' histories, computes the touched clients' indicators
from their whole history (:mod:`features.events.fresh`, one query per kind of row for the whole round), writes the
values that changed (and each family's new time) into the online store, and only then moves the progress mark. An
online store that fails leaves the mark where it was and the same events are applied again later (recomputed from the
same history: nothing lost, nothing counted twice).

The online as-of date is the latest of the batch's as-of date and every applied event's date. When it moves
forward, every client with a kept history is recomputed, so that windows expire for them too; clients no event
touched keep their batch values (their freshness says so).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from features.events.fresh import FRESH_INDICATORS, HISTORY_DAYS, fresh_values_of
from features.events.journal import Journal, JournalRow
from features.store.online_writer import OnlineWriter

log = logging.getLogger("crm.events")
FRESH_VIEWS = list(FRESH_INDICATORS)


@dataclass
class Applied:
    """One application: the events, the as-of date and event time written, and each client's indicators before
    and after (clients with a row in the online store)."""

    rows: list[JournalRow]
    as_of: dt.date
    stamp: dt.datetime
    before: dict[str, dict[str, object]] = field(default_factory=dict)
    after: dict[str, dict[str, object]] = field(default_factory=dict)
    not_in_store: list[str] = field(default_factory=list)


def _chunks(items: list[str], size: int = 500) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class RawHistory:
    """Reads the recent history of chosen clients from the raw parquet tables with DuckDB."""

    def __init__(self, raw_dir: Path) -> None:
        self.raw_dir = Path(raw_dir)
        self._con = None

    def _path(self, name: str) -> str:
        return str(self.raw_dir / f"{name}.parquet").replace("'", "''")

    def connection(self):
        if self._con is None:
            import duckdb

            self._con = duckdb.connect(config={"threads": 1, "memory_limit": "512MB"})
        return self._con

    def known(self, table: str, column: str) -> set[str]:
        """Every value of a raw id column (for checking references)."""
        con = self.connection()
        return {r[0] for r in con.execute(f"SELECT DISTINCT {column} FROM read_parquet('{self._path(table)}')"
                                          ).fetchall()}

    def latest_snapshot(self) -> dt.date | None:
        con = self.connection()
        (found,) = con.execute(f"SELECT MAX(snapshot_date) FROM read_parquet('{self._path('account_snapshots')}')"
                               ).fetchone()
        return found

    def seed_rows(self, client_ids: list[str], since: dt.date) -> tuple[list[tuple], list[tuple]]:
        """(seeded rows, history rows) of the clients, for the tables of :mod:`features.events.journal`."""
        import pyarrow as pa

        con = self.connection()
        con.register("wanted", pa.table({"client_id": client_ids}))
        try:
            snapshot = self.latest_snapshot()
            seeded = con.execute(
                f"SELECT c.client_id, c.opened_on, COALESCE(s.total_assets, 0.0), c.broker_id, c.branch_id "
                f"FROM read_parquet('{self._path('clients')}') c "
                f"LEFT JOIN (SELECT client_id, total_assets FROM read_parquet('{self._path('account_snapshots')}') "
                f"           WHERE snapshot_date = ?) s USING (client_id) "
                f"WHERE c.client_id IN (SELECT client_id FROM wanted)", [snapshot]).fetchall()
            history: list[tuple] = []
            for client_id, transfer_id, day, direction, amount in con.execute(
                    f"SELECT client_id, transfer_id, transfer_date, direction, amount "
                    f"FROM read_parquet('{self._path('cash_transfers')}') WHERE transfer_date > ? "
                    f"AND client_id IN (SELECT client_id FROM wanted)", [since]).fetchall():
                history.append(("t", f"b:{transfer_id}", client_id, day.isoformat(), direction, None, amount,
                                None, 1))
            for client_id, day, commission, amount, count in con.execute(
                    f"SELECT client_id, trade_date, SUM(commission), SUM(amount), COUNT(*) "
                    f"FROM read_parquet('{self._path('trades')}') WHERE trade_date > ? "
                    f"AND client_id IN (SELECT client_id FROM wanted) GROUP BY 1, 2", [since]).fetchall():
                history.append(("x", f"b:{client_id}:{day.isoformat()}", client_id, day.isoformat(), None, None,
                                commission, amount, count))
            for client_id, contact_id, day, channel, outcome in con.execute(
                    f"SELECT client_id, contact_id, contact_date, channel, outcome "
                    f"FROM read_parquet('{self._path('contacts')}') WHERE contact_date > ? "
                    f"AND client_id IN (SELECT client_id FROM wanted)", [since]).fetchall():
                history.append(("c", f"b:{contact_id}", client_id, day.isoformat(), channel, outcome, None, None,
                                1))
            for client_id, complaint_id, filed_on, category, resolved_on in con.execute(
                    f"SELECT client_id, complaint_id, filed_on, category, resolved_on "
                    f"FROM read_parquet('{self._path('complaints')}') "
                    f"WHERE client_id IN (SELECT client_id FROM wanted)").fetchall():
                history.append(("p", str(complaint_id), client_id, filed_on.isoformat(), category,
                                resolved_on.isoformat() if resolved_on else None, None, None, 1))
        finally:
            con.unregister("wanted")
        return ([(c, o.isoformat(), float(a), b, br) for c, o, a, b, br in seeded], history)


def _event_history(row: JournalRow) -> tuple | None:
    """The history row of one journal event (a complaint resolution is a row of its own: it may come first)."""
    body = row.body
    key = f"e:{row.event_id}"
    if row.kind == "cash_transfer":
        return ("t", key, row.client_id, body["transfer_date"], body["direction"], None, body["amount"], None, 1)
    if row.kind == "trade":
        return ("x", key, row.client_id, body["trade_date"], None, None, body["commission"], body["amount"], 1)
    if row.kind == "contact":
        return ("c", key, row.client_id, body["contact_date"], body["channel"], body["outcome"], None, None, 1)
    if row.kind == "complaint_filed":
        return ("p", str(body["complaint_id"]), row.client_id, body["filed_on"], body["category"], None, None, None,
                1)
    if row.kind == "complaint_resolved":
        return ("r", str(body["complaint_id"]), row.client_id, body["resolved_on"], None, None, None, None, 1)
    return None


class EventApplier:
    """Applies the journal of one ``CRM_HOME`` to its online store; safe to run in several processes at once
    (applications are serialised by the journal's write lock)."""

    def __init__(self, journal: Journal, raw_dir: Path, writer: OnlineWriter, batch_as_of: dt.date,
                 timezone: str = "Asia/Shanghai") -> None:
        self.journal = journal
        self.raw = RawHistory(raw_dir)
        self.writer = writer
        self.batch_as_of = batch_as_of
        self.zone = ZoneInfo(timezone)
        self._lock = threading.Lock()  # the file lock is per process: threads of one process take this first

    # history ------------------------------------------------------------------------------------------------

    def _seed(self, client_ids: set[str]) -> None:
        """Read the raw history of clients not seen before (outside the write lock: it scans parquet files)."""
        conn = self.journal.connection()
        wanted = sorted(client_ids)
        known: set[str] = set()
        for part in _chunks(wanted):
            known.update(r[0] for r in conn.execute(
                f"SELECT client_id FROM seeded WHERE client_id IN ({','.join('?' * len(part))})", part))
        missing = [c for c in wanted if c not in known]
        if not missing:
            return
        since = self.batch_as_of - dt.timedelta(days=HISTORY_DAYS)
        seeded, history = self.raw.seed_rows(missing, since)
        found = {row[0] for row in seeded}
        # A client the raw tables do not know has no online row either: remembered as seeded, nothing to write.
        seeded += [(c, "1970-01-01", 0.0, None, None) for c in missing if c not in found]

        def store() -> None:
            # Base rows never replace what events wrote (a complaint filed by an event and resolved in the raw
            # data cannot happen; the reverse keeps the event's row).
            conn.executemany("INSERT OR IGNORE INTO history VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             sorted(history, key=lambda row: (row[0], row[1])))  # in key order: fewer page splits
            conn.executemany("INSERT OR IGNORE INTO seeded VALUES (?, ?, ?, ?, ?)", seeded)

        self._commit(conn, store, durable=False)  # read again from the raw tables if lost

    # applying -----------------------------------------------------------------------------------------------

    def _stamp(self, conn: sqlite3.Connection, as_of: dt.date) -> dt.datetime:
        """The event time written with fresh values: the as-of date at the current time of day (so it is now
        when the as-of date is today), always after the previous one (Redis keeps only newer rows)."""
        now = dt.datetime.now(self.zone)
        stamp = dt.datetime.combine(as_of, now.time(), tzinfo=self.zone)
        previous = self.journal.progress("stamp", conn)
        if previous is not None:
            stamp = max(stamp, dt.datetime.fromisoformat(previous) + dt.timedelta(milliseconds=1))
        return stamp

    def as_of(self, conn: sqlite3.Connection | None = None) -> dt.date:
        text = self.journal.progress("as_of", conn)
        stored = dt.date.fromisoformat(text) if text else self.batch_as_of
        return max(stored, self.batch_as_of)

    @contextlib.contextmanager
    def _applying(self) -> Iterator[None]:
        """One application at a time across the processes of this home (API workers, consumers): a file lock, so
        that the journal's own write lock is held only for short commits and never blocks the intake while the
        online store is written."""
        with self._lock, (self.journal.events_dir / "apply.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def apply_once(self, limit: int = 5000) -> Applied | None:
        """Apply up to ``limit`` pending events; None when there were none. Raises OnlineStoreUnavailable (and
        moves nothing) when the online store cannot be written."""
        conn = self.journal.connection()
        if not self.journal.pending(conn, self.journal.applied_seq(conn), 1):
            return None
        with self._applying():
            rows = self.journal.pending(conn, self.journal.applied_seq(conn), limit)
            if not rows:
                return None
            self._seed({r.client_id for r in rows})
            self.writer.ping()  # a store that is down fails here, before anything is computed
            previous = self.as_of(conn)
            as_of = max(previous, max(r.day for r in rows))
            history = [h for h in map(_event_history, rows) if h is not None]
            # The events' rows join their clients' histories first (idempotent: a failed round that is applied
            # again writes the same rows); the progress mark moves only once the online store has them.
            self._commit(conn, lambda: conn.executemany(
                "INSERT OR REPLACE INTO history VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", history), durable=False)
            clients = {r.client_id for r in rows}
            if as_of > previous:  # windows moved for every client with a kept history
                clients |= {r[0] for r in conn.execute("SELECT client_id FROM seeded")}
            ordered = sorted(clients)
            fresh = fresh_values_of(conn, ordered, as_of)
            stamp = self._stamp(conn, as_of)
            # Only what changed is encoded and written (and every recomputed family's time moves): most events
            # change a few indicators of one family.
            current = self.writer.exchange(fresh, stamp)

            def progress() -> None:
                self.journal.set_progress(conn, "applied_seq", str(rows[-1].seq))
                self.journal.set_progress(conn, "as_of", as_of.isoformat())
                self.journal.set_progress(conn, "stamp", stamp.isoformat())

            self._commit(conn, progress, durable=False)  # lost in a power cut: the same events applied again
        touched = {r.client_id for r in rows}
        return Applied(
            rows=rows, as_of=as_of, stamp=stamp,
            before={c: {k: v for view in FRESH_VIEWS for k, v in current[c][view].items()} for c in touched
                    if c in current},
            after={c: {k: v for view in FRESH_VIEWS for k, v in fresh[c][view].items()} for c in touched
                   if c in current},
            not_in_store=sorted(touched - set(current)),
        )

    @staticmethod
    def _commit(conn: sqlite3.Connection, work, durable: bool = True) -> None:
        """Run ``work`` in one write transaction. Not ``durable``: the commit is not synced to disk by itself (the
        next synced commit of the journal, an accepted event's, syncs it with its own: the write-ahead log is
        synced whole). A power cut may lose the last such commits, and only the last (the log is replayed in
        order): what applying writes is derived again from the journal and the raw tables, and a lost progress
        mark applies the same events again, which writes the same values into the online store (that write is
        synced before the mark moves)."""
        if not durable:
            conn.execute("PRAGMA synchronous = NORMAL")
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                work()
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        finally:
            if not durable:
                conn.execute("PRAGMA synchronous = FULL")

    def _seeded_among(self, conn: sqlite3.Connection, clients: set[str]) -> list[str]:
        found: list[str] = []
        for part in _chunks(sorted(clients)):
            found += [r[0] for r in conn.execute(
                f"SELECT client_id FROM seeded WHERE client_id IN ({','.join('?' * len(part))})", part)]
        return found
