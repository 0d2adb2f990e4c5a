"""API keys: created once and shown once, stored as a SHA-256 of their secret, each with one role.

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

from service.db import api_keys


class Role(StrEnum):
    FRONT_OFFICE = "front_office"
    DATA_SCIENTIST = "data_scientist"
    COMPLIANCE = "compliance"
    ADMIN = "admin"
    INGEST = "ingest"  # systems that feed client events: trading, bank-securities transfers, complaints, call centre


def admitted(roles: tuple[Role, ...]) -> set[Role]:
    """Who may do what ``roles`` may: those roles, and admins always (the one rule for the API and the pages)."""
    return {*roles, Role.ADMIN}


@dataclass(frozen=True)
class Caller:
    key_id: str
    name: str
    role: Role

    def may(self, *roles: Role) -> bool:
        return self.role in admitted(roles)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(engine: sa.Engine, role: Role, name: str) -> tuple[str, str]:
    """A new key for ``role``; returns (key id, the key). The key is never stored or shown again."""
    key_id = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    with engine.begin() as conn:
        conn.execute(api_keys.insert().values(key_id=key_id, name=name, role=role.value, secret_sha256=_hash(secret),
                                              created_at=datetime.now(UTC).isoformat(timespec="seconds")))
    return key_id, f"crm_{key_id}_{secret}"


def revoke_key(engine: sa.Engine, key_id: str) -> bool:
    with engine.begin() as conn:
        done = conn.execute(api_keys.update().where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                            .values(revoked_at=datetime.now(UTC).isoformat(timespec="seconds")))
    return done.rowcount > 0


def list_keys(engine: sa.Engine) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(api_keys.c.key_id, api_keys.c.name, api_keys.c.role, api_keys.c.created_at,
                                      api_keys.c.revoked_at).order_by(api_keys.c.created_at)).all()
    return [dict(r._mapping) for r in rows]


class KeyRing:
    """Checks presented keys against the database, remembering known keys for a few seconds."""

    def __init__(self, engine: sa.Engine, ttl_s: float = 5.0) -> None:
        self.engine = engine
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, tuple[str, str, str] | None]] = {}

    def _row(self, key_id: str) -> tuple[str, str, str] | None:
        now = time.monotonic()
        hit = self._cache.get(key_id)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(api_keys.c.secret_sha256, api_keys.c.name, api_keys.c.role)
                               .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))).first()
        value = tuple(row) if row is not None else None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key_id] = (now, value)  # type: ignore[assignment]
        return value  # type: ignore[return-value]

    def check(self, key: str) -> Caller | None:
        parts = key.split("_", 2)
        if len(parts) != 3 or parts[0] != "crm" or not parts[1]:
            return None
        row = self._row(parts[1])
        if row is None or not hmac.compare_digest(row[0], _hash(parts[2])):
            return None
        return Caller(parts[1], row[1], Role(row[2]))
