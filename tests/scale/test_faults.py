"""Faults under load against real servers: Redis stopped and started again, PostgreSQL restarted.

Each test runs `crm serve` over the shared test world with a server of its own (see conftest), keeps callers
busy, takes the server away and brings it back, and checks what a front-office system and a regulator would see:
no server error, degraded decisions while Redis is away and normal ones again soon after it returns, and an audit
record for every decision answered across a PostgreSQL restart.
"""

from __future__ import annotations

import threading
import time
import urllib.error
from dataclasses import dataclass, field

import sqlalchemy as sa

from config import Settings
from features.store.feature_store import latest_frame, materialize_latest
from service.db import decisions, make_engine
from service.keys import Role, create_key
from tests._server import crm_serve, get, post
from tests.scale.conftest import OwnPostgres, OwnRedis
from tests.service.conftest import activate_bundled

RECOVERY_S = 10.0


@dataclass
class Load:
    """Callers asking for decisions until stopped; every answer is kept with the times it was asked and came
    back (a busy machine can take a while between the two)."""

    base: str
    key: str
    clients: list[str]
    answers: list[tuple[float, float, int, dict]] = field(default_factory=list)  # asked, answered, status, body
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    # What a caller counts as a request that got no answer (kept in errors), and how long it waits after one.
    unanswered: tuple[type[BaseException], ...] = (urllib.error.URLError, ConnectionError, TimeoutError)
    pause_after_unanswered_s: float = 0.0

    def _call(self, offset: int) -> None:
        k = offset
        while not self._stop.is_set():
            client = self.clients[k % len(self.clients)]
            k += 3
            asked = time.monotonic()
            try:
                status, body = post(f"{self.base}/v1/decisions", {"client_id": client}, self.key, timeout=10)
            except self.unanswered as e:
                self.errors.append(f"{type(e).__name__}: {e}")
                time.sleep(self.pause_after_unanswered_s)
                continue
            self.answers.append((asked, time.monotonic(), status, body))

    def __enter__(self) -> Load:
        self._threads = [threading.Thread(target=self._call, args=(i,), daemon=True) for i in range(3)]
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def asked_since(self, moment: float) -> list[tuple[float, float, int, dict]]:
        return [a for a in list(self.answers) if a[0] >= moment]


def _clients(settings: Settings, n: int = 300) -> list[str]:
    return list(latest_frame(settings.features_dir, ["client_category:total_assets"]).index)[:n]


def test_decisions_degrade_while_redis_is_stopped_and_recover_when_it_returns(
        model_home: Settings, own_redis: OwnRedis) -> None:
    activate_bundled(model_home)
    # Generous bounds: a busy CI machine must not turn a decision degraded before Redis is stopped. A stopped
    # Redis refuses connections at once, so this still finds a client that waits or retries.
    online = f"{own_redis.url}?socket_timeout=1&socket_connect_timeout=1"
    materialize_latest(model_home.features_dir, online)
    # No rate limit: rules-only decisions come faster than a front-office key's default (limits: tests/service).
    _, key = create_key(make_engine(model_home.service_database_url), Role.FRONT_OFFICE, "redis-fault-test",
                        rate_limit=0)
    with crm_serve(model_home.home, {"CRM_ONLINE_STORE": online, "CRM_ONLINE_TIMEOUT_MS": "1000"}) as server, \
            Load(server.base, key, _clients(model_home)) as load:
        time.sleep(2)
        assert load.answers and not any(b.get("degraded") for _, _, s, b in load.answers if s == 200), \
            "decisions were degraded before Redis was stopped"
        own_redis.stop()
        stopped = time.monotonic()
        time.sleep(3)
        restarting = time.monotonic()  # Redis answers again somewhere between this and `returned`
        own_redis.start()
        returned = time.monotonic()
        deadline = returned + RECOVERY_S + 5
        while time.monotonic() < deadline and not any(
                s == 200 and not b["degraded"] for _, _, s, b in load.asked_since(returned)):
            time.sleep(0.2)
        time.sleep(1)
    assert not load.errors, load.errors[:3]
    statuses = {s for _, _, s, _ in load.answers}
    assert statuses == {200}, f"statuses seen: {statuses}"
    while_down = [b for asked, answered, _, b in load.answers if stopped <= asked and answered < restarting]
    # Callers keep being answered while Redis is away (a client library retrying with backoffs would hold each
    # decision for seconds), and every such answer is rules-only.
    assert len(while_down) >= 10, f"only {len(while_down)} decisions answered while Redis was away"
    assert all(b["degraded"] for b in while_down), "decisions while Redis was away were not degraded"
    recovered = [asked for asked, _, _, b in load.asked_since(returned) if not b["degraded"]]
    assert recovered, f"no normal decision within {RECOVERY_S + 5:.0f} s of Redis returning"
    print(f"normal decisions again {recovered[0] - returned:.2f} s after Redis returned; "
          f"{len(while_down)} degraded decisions while it was away")
    assert recovered[0] - returned <= RECOVERY_S, f"normal decisions came back after {recovered[0] - returned:.1f} s"
    assert not any(b["degraded"] for asked, _, _, b in load.answers if asked >= recovered[0] + 1), \
        "decisions were still degraded after recovering"


def test_no_audit_record_is_lost_when_postgresql_restarts_under_load(
        model_home: Settings, own_postgres: OwnPostgres) -> None:
    activate_bundled(model_home)
    engine = make_engine(own_postgres.url)
    _, key = create_key(engine, Role.FRONT_OFFICE, "postgres-fault-test", rate_limit=0)
    with crm_serve(model_home.home, {"CRM_SERVICE_DB_URL": own_postgres.url, "CRM_ONLINE_TIMEOUT_MS": "5000"}) \
            as server:
        with Load(server.base, key, _clients(model_home)) as load:
            time.sleep(2)
            restarted_at = time.monotonic()
            own_postgres.restart()
            back_at = time.monotonic()
            time.sleep(3)
        answered = [b["decision_id"] for _, _, s, b in load.answers if s == 200]
        assert not load.errors, load.errors[:3]
        assert {s for _, _, s, _ in load.answers} == {200}
        assert [a for a, _, _, _ in load.answers if restarted_at <= a <= back_at], \
            "no decision was answered while PostgreSQL restarted"
        deadline = time.monotonic() + 60
        while get(f"{server.base}/readyz")[1].get("audit_backlog", 1) and time.monotonic() < deadline:
            time.sleep(0.5)
    engine.dispose()
    engine = make_engine(own_postgres.url)
    with engine.connect() as conn:
        written = set(conn.execute(sa.select(decisions.c.decision_id)).scalars())
    engine.dispose()
    print(f"{len(answered)} decisions answered across the restart, {len(written)} audit records")
    assert len(answered) > 50
    assert set(answered) <= written, f"{len(set(answered) - written)} of {len(answered)} answered decisions lost"
