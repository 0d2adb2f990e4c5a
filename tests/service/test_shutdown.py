"""A real `crm serve` process: every successful decision is audited, also across a SIGTERM under load."""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.error
import urllib.request

import sqlalchemy as sa

from config import Settings
from service.db import decisions, make_engine
from service.keys import Role, create_key
from tests._server import crm_serve, post
from tests.service.conftest import activate_bundled


def audited(engine: sa.Engine, ids: list[str]) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(decisions)
                            .where(decisions.c.decision_id.in_(ids))).scalar_one()


def test_every_decision_is_audited_after_load_and_after_sigterm(model_home: Settings) -> None:
    activate_bundled(model_home)
    engine = make_engine(model_home.service_database_url)
    _, key = create_key(engine, Role.FRONT_OFFICE, "shutdown-test", rate_limit=0)  # limits: test_guards
    from features.store.feature_store import latest_frame

    clients = list(latest_frame(model_home.features_dir, ["client_category:total_assets"]).index)[:400]
    with crm_serve(model_home.home, workers=2) as server:
        base = server.base
        # A load run: every 200 has its audit record once the writer has flushed.
        ok = [d["decision_id"] for c in clients[:100] for s, d in [post(f"{base}/v1/decisions", {"client_id": c}, key)]
              if s == 200]
        assert len(ok) == 100
        time.sleep(0.5)
        assert audited(engine, ok) == len(ok)

        # SIGTERM while four callers are mid-flight: every response that came back 200 is in the audit log.
        answered: list[str] = []
        lock = threading.Lock()

        def caller(offset: int) -> None:
            for c in clients[offset::4]:
                try:
                    status, body = post(f"{base}/v1/decisions", {"client_id": c}, key)
                except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
                    return
                if status == 200:
                    with lock:
                        answered.append(body["decision_id"])

        threads = [threading.Thread(target=caller, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        server.process.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(60)
        assert server.process.wait(60) == 0
    assert answered, "no decision was answered before the shutdown"
    assert audited(engine, answered) == len(answered)
    engine.dispose()
