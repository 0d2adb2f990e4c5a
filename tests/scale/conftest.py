"""The real servers of the scale-out path: PostgreSQL and Redis on this machine.

Each test gets its own PostgreSQL schema (dropped afterwards) or Redis database key prefix. Where a server is
absent the tests skip saying so — except under CI (`CI=true`), where a missing server is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

PG_URL = os.environ.get("CRM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("CRM_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def unavailable(what: str, error: Exception) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is required under CI but not reachable: {error}")
    pytest.skip(f"{what} not reachable ({error}); start it to run the scale-out tests")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL whose connections use a fresh schema of the test database."""
    schema = f"t_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    except Exception as e:  # noqa: BLE001 - any connection problem means the server is not usable here
        admin.dispose()
        unavailable(f"PostgreSQL at {PG_URL}", e)
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    admin.dispose()


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database of its own (flushed before and after), or a skip (a failure under CI)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        client.flushdb()
    except Exception as e:  # noqa: BLE001 - any connection problem means the server is not usable here
        unavailable(f"Redis at {REDIS_URL}", e)
    yield f"{REDIS_URL}?socket_timeout=0.5"
    client.flushdb()
    client.close()
