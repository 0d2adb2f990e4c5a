"""A real `crm serve` killed with SIGKILL under load loses no decision it answered; rate limits are shared by the
workers through Redis.

The crash test runs `crm serve --workers 2` over the shared test world with an audit database of its own, keeps
three callers asking for decisions, kills the whole process group with SIGKILL at one of three moments, starts the
server again over the same home, and checks that every decision answered with 200 is in the audit log.
"""

from __future__ import annotations

import http.client
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from config import Settings
from service.db import decisions, make_engine
from service.keys import Role, create_key
from tests._server import crm_serve, post
from tests.scale.test_faults import Load, _clients
from tests.service.conftest import activate_bundled


class CrashLoad(Load):
    """The fault tests' callers, for a server that is killed: an answer cut off by the kill (headers without the
    whole body, a reset) was never received, so it counts as unanswered rather than failing the caller."""

    def __post_init__(self) -> None:
        self.unanswered = (http.client.HTTPException, OSError, ValueError)
        self.pause_after_unanswered_s = 0.05


def _written(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(sa.select(decisions.c.decision_id)).scalars())
    finally:
        engine.dispose()


# When the process group is killed: while the first answers come back (the writer has written little), in steady
# load, and the instant the callers have their last answer (what was just answered is still queued).
MOMENTS = {"first_answers": 0.3, "steady_load": 3.0, "right_after_the_last_answer": None}


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_sigkill_under_load_loses_no_answered_decision(model_home: Settings, tmp_path: Path, moment: str) -> None:
    activate_bundled(model_home)
    url = f"sqlite:///{tmp_path / 'service.db'}"
    engine = make_engine(url)
    _, key = create_key(engine, Role.FRONT_OFFICE, "crash-test", rate_limit=0)
    engine.dispose()
    env = {"CRM_SERVICE_DB_URL": url, "CRM_ONLINE_TIMEOUT_MS": "5000"}
    with crm_serve(model_home.home, env, workers=2, log=tmp_path / "first.log") as server:
        load = CrashLoad(server.base, key, _clients(model_home))
        with load:
            deadline = time.monotonic() + 60
            while not load.answers and time.monotonic() < deadline:
                time.sleep(0.05)
            wait = MOMENTS[moment]
            if wait is not None:
                time.sleep(wait)
                os.killpg(server.process.pid, signal.SIGKILL)
            else:
                time.sleep(2.0)
                load._stop.set()
                for t in load._threads:
                    t.join(30)
                os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(10)
        answered = [b["decision_id"] for _, _, s, b in load.answers if s == 200]
    assert len(answered) >= 5, f"only {len(answered)} decisions answered before the kill"
    lost_before_restart = set(answered) - _written(url)
    with crm_serve(model_home.home, env, workers=2, log=tmp_path / "second.log"):
        deadline = time.monotonic() + 60
        while not set(answered) <= _written(url) and time.monotonic() < deadline:
            time.sleep(0.2)
    written = _written(url)
    print(f"{moment}: {len(answered)} answered, {len(lost_before_restart)} not yet in the audit database at the "
          f"kill, {len(set(answered) - written)} missing after the restart")
    assert set(answered) <= written, f"{len(set(answered) - written)} of {len(answered)} answered decisions lost"


def test_rate_limits_are_shared_by_two_workers_through_redis(model_home: Settings, tmp_path: Path,
                                                             redis_url: str) -> None:
    import redis

    activate_bundled(model_home)
    url = f"sqlite:///{tmp_path / 'service.db'}"
    engine = make_engine(url)
    key_id, key = create_key(engine, Role.FRONT_OFFICE, "limited", rate_limit=10)
    engine.dispose()
    env = {"CRM_SERVICE_DB_URL": url, "CRM_ONLINE_TIMEOUT_MS": "5000", "CRM_RATE_LIMIT_REDIS": redis_url}
    clients = _clients(model_home, 200)
    answers: list[tuple[float, float, int]] = []
    lock = threading.Lock()
    with crm_serve(model_home.home, env, workers=2, log=tmp_path / "server.log") as server:
        def call(offset: int) -> None:
            for c in clients[offset::8]:
                asked = time.time()
                status, _ = post(f"{server.base}/v1/decisions", {"client_id": c}, key)
                with lock:
                    answers.append((asked, time.time(), status))

        threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        counted = redis.Redis.from_url(redis_url).keys(f"crm:rate:key:{key_id}:*")  # counters live two seconds
    ok = [a for a in answers if a[2] == 200]
    refused = [a for a in answers if a[2] == 429]
    windows = int(max(a[1] for a in answers)) - int(min(a[0] for a in answers)) + 1
    print(f"{len(ok)} admitted, {len(refused)} refused over {windows} one-second windows (limit 10/s)")
    assert counted, "the workers did not count in Redis"
    assert len(ok) + len(refused) == len(clients) and refused
    assert len(ok) <= 10 * windows, f"{len(ok)} admitted in {windows} windows: the workers did not share the limit"
