"""Ruleset versions and maker-checker approval, kept in an append-only, tamper-evident history.

A version is stored once, under its content hash, when it is submitted. Every act — submit, approve, reject,
activate — is an event: who, when, which version, why. Each event carries the hash of the one before it and its
own hash over its content, so a changed, removed or inserted entry breaks the chain and is detected; a stored
version whose content no longer hashes to its name is detected too. Nothing is ever updated or deleted (SQLite
triggers refuse it; the chain catches what bypasses them). Any SQLAlchemy URL works: SQLite by default,
PostgreSQL in production.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from rules.errors import (
    ActivationRefusedError,
    ApprovalRefusedError,
    HistoryTamperedError,
    VersionNotFoundError,
)
from rules.model import RulesetSpec, content_hash, ruleset_from_canonical

GENESIS = "0" * 64
_metadata = sa.MetaData()
versions_table = sa.Table(
    "ruleset_versions", _metadata,
    sa.Column("version", sa.String(64), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("stored_at", sa.String(40), nullable=False),
)
events_table = sa.Table(
    "ruleset_events", _metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("at", sa.String(40), nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    # A unique previous hash means two writers can never both extend the same entry: the chain cannot fork.
    sa.Column("prev_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("entry_hash", sa.String(64), nullable=False),
)
_SQLITE_APPEND_ONLY = [
    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op} BEFORE {op.upper()} ON {table} "
    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
    for table in ("ruleset_versions", "ruleset_events") for op in ("update", "delete")
]
_POSTGRES_APPEND_ONLY = [
    "CREATE OR REPLACE FUNCTION crm_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION '%% is append-only', TG_TABLE_NAME; END $$",
    *(f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = '{t}_append_only') THEN "
      f"CREATE TRIGGER {t}_append_only BEFORE UPDATE OR DELETE ON {t} "
      f"FOR EACH ROW EXECUTE FUNCTION crm_append_only(); END IF; END $$"
      for t in ("ruleset_versions", "ruleset_events")),
]


class Action(StrEnum):
    SUBMIT = "submit"
    APPROVE = "approve"
    REJECT = "reject"
    ACTIVATE = "activate"


class Status(StrEnum):
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Event:
    seq: int
    at: str
    actor: str
    action: str
    version: str
    note: str
    prev_hash: str
    entry_hash: str

    def as_dict(self) -> dict:
        return {"seq": self.seq, "at": self.at, "actor": self.actor, "action": self.action, "version": self.version,
                "note": self.note, "entry_hash": self.entry_hash}


@dataclass(frozen=True)
class VersionState:
    """Where one version stands: its author, approver and whether it is active."""

    version: str
    name: str
    status: Status
    author: str
    submitted_at: str
    note: str
    decided_by: str | None
    decided_at: str | None
    decision_note: str | None
    active: bool

    def as_dict(self) -> dict:
        return {k: (v.value if isinstance(v, StrEnum) else v) for k, v in self.__dict__.items()}


def _entry_hash(seq: int, at: str, actor: str, action: str, version: str, note: str, prev_hash: str) -> str:
    blob = json.dumps([seq, at, actor, action, version, note, prev_hash], ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()


def _same_person(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


class RulesHistory:
    """The store of ruleset versions and the approval history behind one database URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = sa.create_engine(url, future=True)
        _metadata.create_all(self.engine)
        with self.engine.begin() as conn:
            statements = {"sqlite": _SQLITE_APPEND_ONLY, "postgresql": _POSTGRES_APPEND_ONLY}
            for sql in statements.get(self.engine.dialect.name, []):
                conn.exec_driver_sql(sql)

    def close(self) -> None:
        self.engine.dispose()

    # reading -----------------------------------------------------------------------------------------------

    def events(self, verify: bool = True) -> list[Event]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(events_table).order_by(events_table.c.seq)).all()
        events = [Event(**row._mapping) for row in rows]
        if verify:
            problems = _chain_problems(events)
            if problems:
                raise HistoryTamperedError("the rule history does not verify: " + "; ".join(problems))
        return events

    def verify(self) -> list[str]:
        """Every problem with the history and stored versions; empty when intact."""
        events = self.events(verify=False)
        problems = _chain_problems(events)
        with self.engine.connect() as conn:
            stored = conn.execute(sa.select(versions_table)).all()
        submitted = {e.version for e in events if e.action == Action.SUBMIT}
        for row in stored:
            try:
                actual = content_hash(json.loads(row.content))
            except (ValueError, TypeError):
                actual = "unreadable"
            if actual != row.version:
                problems.append(f"stored version {row.version[:12]} no longer matches its content (hash {actual[:12]})")
            if row.version not in submitted:
                problems.append(f"stored version {row.version[:12]} has no submit entry in the history")
        stored_versions = {row.version for row in stored}
        problems += [f"version {v[:12]} was submitted but its content is missing" for v in submitted - stored_versions]
        return problems

    def resolve(self, version: str) -> str:
        """The full hash for a version or a unique prefix of it (at least 6 characters)."""
        version = version.strip().lower()
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(versions_table.c.version)
                                 .where(versions_table.c.version.startswith(version))).scalars().all()
        if len(version) < 6 or len(found) != 1:
            if len(found) > 1:
                raise VersionNotFoundError(f"{version} (ambiguous: {len(found)} versions start with it)")
            raise VersionNotFoundError(version)
        return found[0]

    def load(self, version: str) -> RulesetSpec:
        """The stored ruleset of a version, checked against its hash."""
        version = self.resolve(version)
        with self.engine.connect() as conn:
            content = conn.execute(sa.select(versions_table.c.content)
                                   .where(versions_table.c.version == version)).scalar_one()
        canonical = json.loads(content)
        if content_hash(canonical) != version:
            raise HistoryTamperedError(f"stored version {version[:12]} no longer matches its content")
        return ruleset_from_canonical(canonical)

    def states(self) -> list[VersionState]:
        """Every submitted version, oldest first, with its current status."""
        events = self.events()
        with self.engine.connect() as conn:
            names = dict(conn.execute(sa.select(versions_table.c.version, versions_table.c.name)).all())
        active = self._active(events)
        out: dict[str, dict] = {}
        for e in events:
            if e.action == Action.SUBMIT:
                out[e.version] = {"version": e.version, "name": names.get(e.version, ""), "status": Status.SUBMITTED,
                                  "author": e.actor, "submitted_at": e.at, "note": e.note, "decided_by": None,
                                  "decided_at": None, "decision_note": None}
            elif e.action in (Action.APPROVE, Action.REJECT):
                out[e.version] |= {"status": Status.APPROVED if e.action == Action.APPROVE else Status.REJECTED,
                                   "decided_by": e.actor, "decided_at": e.at, "decision_note": e.note}
        return [VersionState(**s, active=s["version"] == active) for s in out.values()]

    def state(self, version: str) -> VersionState:
        version = self.resolve(version)
        for s in self.states():
            if s.version == version:
                return s
        raise VersionNotFoundError(version)

    def active_version(self) -> str | None:
        return self._active(self.events())

    @staticmethod
    def _active(events: list[Event]) -> str | None:
        activations = [e.version for e in events if e.action == Action.ACTIVATE]
        return activations[-1] if activations else None

    # acting ------------------------------------------------------------------------------------------------

    def submit(self, spec: RulesetSpec, by: str, note: str) -> Event:
        """Store a candidate version and record its author and change note (the maker)."""
        by, note = _required(by, "author"), _required(note, "change note")
        version = spec.version
        existing = {s.version: s for s in self.states()}
        if version in existing and existing[version].status != Status.REJECTED:
            s = existing[version]
            raise ApprovalRefusedError(f"version {version[:12]} was already submitted by {s.author} at "
                                       f"{s.submitted_at} and is {s.status.value}")
        with self.engine.begin() as conn:
            if version not in existing:
                conn.execute(versions_table.insert().values(
                    version=version, name=spec.name, stored_at=_now(),
                    content=json.dumps(spec.canonical(), sort_keys=True, ensure_ascii=False)))
            return self._append(conn, by, Action.SUBMIT, version, note)

    def approve(self, version: str, by: str, note: str = "") -> Event:
        """The checker's approval; refused for the author, and for a version not awaiting a decision."""
        return self._decide(version, by, note, Action.APPROVE)

    def reject(self, version: str, by: str, note: str) -> Event:
        return self._decide(version, by, _required(note, "reason"), Action.REJECT)

    def _decide(self, version: str, by: str, note: str, action: Action) -> Event:
        by = _required(by, "approver")
        state = self.state(version)
        verb = "approve" if action == Action.APPROVE else "reject"
        if _same_person(state.author, by):
            raise ApprovalRefusedError(f"{by} submitted version {state.version[:12]} and cannot {verb} it: "
                                       "maker-checker requires a different compliance officer")
        if state.status != Status.SUBMITTED:
            raise ApprovalRefusedError(f"version {state.version[:12]} is already {state.status.value} (by "
                                       f"{state.decided_by} at {state.decided_at})")
        with self.engine.begin() as conn:
            return self._append(conn, by, action, state.version, note)

    def activate(self, version: str, by: str, note: str = "") -> Event:
        """Make an approved version the one the API serves."""
        by = _required(by, "name")
        state = self.state(version)
        if state.status != Status.APPROVED:
            raise ActivationRefusedError(f"version {state.version[:12]} is {state.status.value}; only an approved "
                                         "version can be activated")
        if state.active:
            raise ActivationRefusedError(f"version {state.version[:12]} is already active")
        with self.engine.begin() as conn:
            return self._append(conn, by, Action.ACTIVATE, state.version, note)

    def _append(self, conn: sa.Connection, actor: str, action: Action, version: str, note: str) -> Event:
        for _ in range(5):
            last = conn.execute(sa.select(events_table.c.seq, events_table.c.entry_hash)
                                .order_by(events_table.c.seq.desc()).limit(1)).first()
            seq, prev = (last.seq + 1, last.entry_hash) if last else (1, GENESIS)
            at = _now()
            entry = Event(seq, at, actor, action.value, version, note, prev,
                          _entry_hash(seq, at, actor, action.value, version, note, prev))
            try:
                with conn.begin_nested():
                    conn.execute(events_table.insert().values(**entry.__dict__))
                return entry
            except IntegrityError:
                continue  # another writer appended first: chain onto its entry
        raise ApprovalRefusedError("the rule history is busy; try again")


def _chain_problems(events: list[Event]) -> list[str]:
    problems = []
    prev = GENESIS
    for expected_seq, e in enumerate(events, start=1):
        if e.seq != expected_seq:
            problems.append(f"entry {expected_seq} is missing (found {e.seq})")
        if e.prev_hash != prev:
            problems.append(f"entry {e.seq} does not follow the entry before it")
        if _entry_hash(e.seq, e.at, e.actor, e.action, e.version, e.note, e.prev_hash) != e.entry_hash:
            problems.append(f"entry {e.seq} ({e.action} of {e.version[:12]} by {e.actor}) was altered")
        prev = e.entry_hash
    return problems


def _required(value: str, what: str) -> str:
    value = " ".join((value or "").split())
    if not value:
        raise ApprovalRefusedError(f"a {what} is required")
    return value


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
