"""API keys: created once and shown once, stored as a SHA-256 of their secret, each with one role and a scope
(firm-wide, one branch, or one broker's clients; see :mod:`service.scope`).

A key reads ``crm_<key id>_<secret>``; the id finds the row, the secret's hash proves it. Secrets are 32 random
bytes, so a plain SHA-256 is enough (no password stretching needed) and keeps each check to microseconds.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import sqlalchemy as sa

from service.db import api_keys, web_sessions
from service.scope import FIRM_WIDE, Scope


class Role(StrEnum):
    FRONT_OFFICE = "front_office"
    BRANCH_MANAGER = "branch_manager"  # the managers' pages, the branch's queues, its own brokers' scorecards
    DATA_SCIENTIST = "data_scientist"
    COMPLIANCE = "compliance"
    ADMIN = "admin"
    INGEST = "ingest"  # systems that feed client events: trading, bank-securities transfers, complaints, call centre


def admitted(roles: tuple[Role, ...]) -> set[Role]:
    """Who may do what ``roles`` may: those roles, and admins always (the one rule for the API and the pages)."""
    return {*roles, Role.ADMIN}


@dataclass(frozen=True)
class Caller:
    """An authenticated key: whose it is, its role, and where it may look (see :mod:`service.scope`)."""

    key_id: str
    name: str
    role: Role
    scope: Scope = FIRM_WIDE
    rate_limit: int | None = None  # requests per second; None: the role's figure

    def may(self, *roles: Role) -> bool:
        return self.role in admitted(roles)


class KeyScopeError(ValueError):
    """A role and scope that do not go together (an admin is firm-wide; a branch manager has one branch)."""


def check_role_scope(role: Role, scope: Scope) -> None:
    """Raise :class:`KeyScopeError` unless ``role`` may hold ``scope``."""
    if role == Role.ADMIN and not scope.firm_wide:
        raise KeyScopeError("an admin key is firm-wide: create it without --branch or --broker")
    if role == Role.BRANCH_MANAGER and (scope.branch_id is None or scope.broker_id is not None):
        raise KeyScopeError("a branch_manager key manages one branch: create it with --branch B (and no --broker)")


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(engine: sa.Engine, role: Role, name: str, scope: Scope = FIRM_WIDE,
               rate_limit: int | None = None) -> tuple[str, str]:
    """A new key for ``role`` within ``scope``; returns (key id, the key). The key is never stored or shown again.
    The scope's branch and broker must already be checked against the firm (:meth:`Directory.resolve`)."""
    check_role_scope(role, scope)
    key_id = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    with engine.begin() as conn:
        conn.execute(api_keys.insert().values(key_id=key_id, name=name, role=role.value, secret_sha256=_hash(secret),
                                              created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                                              branch_id=scope.branch_id, broker_id=scope.broker_id,
                                              rate_limit=rate_limit))
    return key_id, f"crm_{key_id}_{secret}"


def revoke_key(engine: sa.Engine, key_id: str) -> bool:
    """Revoke a key and drop its web sessions (every replica refuses it within the key cache's few seconds)."""
    with engine.begin() as conn:
        done = conn.execute(api_keys.update().where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                            .values(revoked_at=datetime.now(UTC).isoformat(timespec="seconds")))
        conn.execute(web_sessions.delete().where(web_sessions.c.key_id == key_id))
    return done.rowcount > 0


def list_keys(engine: sa.Engine) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(api_keys.c.key_id, api_keys.c.name, api_keys.c.role, api_keys.c.branch_id,
                                      api_keys.c.broker_id, api_keys.c.rate_limit, api_keys.c.created_at,
                                      api_keys.c.revoked_at)
                            .order_by(api_keys.c.created_at)).all()
    return [dict(r._mapping) for r in rows]


class KeyRing:
    """Checks presented keys against the database, remembering known keys for a few seconds."""

    def __init__(self, engine: sa.Engine, ttl_s: float = 5.0) -> None:
        self.engine = engine
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, tuple | None]] = {}

    def _row(self, key_id: str) -> tuple | None:
        now = time.monotonic()
        hit = self._cache.get(key_id)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(api_keys.c.secret_sha256, api_keys.c.name, api_keys.c.role,
                                         api_keys.c.branch_id, api_keys.c.broker_id, api_keys.c.rate_limit)
                               .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))).first()
        value = None
        if row is not None:
            scope = Scope(row.branch_id, row.broker_id) if row.branch_id or row.broker_id else FIRM_WIDE
            value = (row.secret_sha256, row.name, Role(row.role), scope, row.rate_limit)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key_id] = (now, value)
        return value

    def forget(self, key_id: str) -> None:
        """Drop a cached key (after revoking it in this process)."""
        self._cache.pop(key_id, None)

    def caller(self, key_id: str) -> Caller | None:
        """The holder of a key known by its id (a web session stores only that), or None once it is revoked."""
        row = self._row(key_id)
        return Caller(key_id, row[1], row[2], row[3], row[4]) if row is not None else None

    def check(self, key: str) -> Caller | None:
        parts = key.split("_", 2)
        if len(parts) != 3 or parts[0] != "crm" or not parts[1]:
            return None
        row = self._row(parts[1])
        if row is None or not hmac.compare_digest(row[0], _hash(parts[2])):
            return None
        return Caller(parts[1], row[1], row[2], row[3], row[4])
