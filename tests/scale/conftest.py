"""The real servers of the scale-out path: PostgreSQL and Redis on this machine.

Each test gets its own PostgreSQL schema (dropped afterwards) or Redis database key prefix. Where a server is
absent the tests skip saying so — except under CI (`CI=true`), where a missing server is a failure.
"""

from __future__ import annotations

import contextlib
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


def _binary(name: str, *candidates: str) -> str:
    import shutil

    for path in (shutil.which(name), *candidates):
        if path and os.path.exists(path):
            return path
    if os.environ.get("CI") == "true":
        pytest.fail(f"{name} is required under CI but is not installed")
    pytest.skip(f"{name} is not installed; install it to run the fault tests")


class OwnRedis:
    """A Redis server of the test's own (its own port and data folder), so it can be stopped and started without
    touching the machine's server. It saves its data at shutdown and loads it at start, as a deployed one does."""

    def __init__(self, folder) -> None:
        from tests._server import free_port

        self.binary = _binary("redis-server")
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self) -> None:
        import subprocess
        import time

        import redis

        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
             "--save", "3600 1", "--appendonly", "no", "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_timeout=1)
        deadline = time.monotonic() + 20
        while True:
            try:
                if client.ping():
                    break
            except redis.RedisError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise AssertionError(f"the test's Redis server did not start (exit code {self.process.poll()})")
            time.sleep(0.1)
        while client.info("persistence").get("loading"):
            time.sleep(0.1)
        client.close()

    def stop(self) -> None:
        import redis

        with contextlib.suppress(redis.ConnectionError):  # the server closes the connection as it exits
            redis.Redis(port=self.port, socket_timeout=5).shutdown(save=True)
        self.process.wait(30)


@pytest.fixture
def own_redis(tmp_path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    if server.process.poll() is None:
        server.process.kill()
        server.process.wait(10)


class OwnPostgres:
    """A PostgreSQL cluster of the test's own (initdb in a temporary folder, its own port), so it can be restarted
    without touching the machine's server."""

    def __init__(self, folder) -> None:
        import glob

        from tests._server import free_port

        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        self.pg_ctl = _binary("pg_ctl", *(f"{b}/pg_ctl" for b in bins))
        self.initdb = _binary("initdb", *(f"{b}/initdb" for b in bins))
        self.folder = folder
        self.data = folder / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        import subprocess

        command = list(args)
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)

    def create(self) -> None:
        if os.geteuid() == 0:
            import shutil

            shutil.chown(self.folder, "postgres")
        self._run(self.initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()

    def _options(self) -> str:
        return f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"

    def start(self) -> None:
        self._run(self.pg_ctl, "-D", str(self.data), "-o", self._options(), "-w", "-l",
                  str(self.folder / "log"), "start")

    def restart(self) -> None:
        self._run(self.pg_ctl, "-D", str(self.data), "-o", self._options(), "-w", "-m", "fast", "-l",
                  str(self.folder / "log"), "restart")

    def stop(self) -> None:
        self._run(self.pg_ctl, "-D", str(self.data), "-w", "-m", "immediate", "stop")


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    import shutil
    import tempfile
    from pathlib import Path

    # Not under pytest's temporary root: the postgres user must be able to reach the folder.
    folder = Path(tempfile.mkdtemp(prefix="crm-test-pg-"))
    server = OwnPostgres(folder)
    try:
        server.create()
        yield server
    finally:
        with contextlib.suppress(Exception):  # it was not running
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)
