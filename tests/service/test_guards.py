"""Limits under abuse and web sessions: 429 with Retry-After per key and per sign-in address; sessions that hold no
key, expire when idle, end at sign-out and when their key is revoked."""

from __future__ import annotations

import asyncio
import hashlib
import time

import pytest
import sqlalchemy as sa

from service.db import make_engine, web_sessions
from service.keys import Role, create_key, revoke_key
from service.limits import Limiter, role_limits
from tests.service.conftest import Api


def _key(api: Api, role: Role = Role.FRONT_OFFICE, rate_limit: int | None = None, name: str = "guarded") -> str:
    engine = make_engine(api.settings.service_database_url)
    try:
        return create_key(engine, role, name, rate_limit=rate_limit)[1]
    finally:
        engine.dispose()


def test_over_its_limit_a_key_gets_429_with_retry_after(api: Api) -> None:
    headers = {"Authorization": f"Bearer {_key(api, rate_limit=3)}"}
    started = time.time()
    answers = [api.client.post("/v1/decisions", json={"client_id": api.client_ids[0]}, headers=headers)
               for _ in range(10)]
    windows = int(time.time()) - int(started) + 1
    refused = [a for a in answers if a.status_code == 429]
    assert sum(a.status_code == 200 for a in answers) <= 3 * windows and refused
    for a in refused:
        assert a.json()["error"]["code"] == "rate_limited" and int(a.headers["Retry-After"]) >= 1
    # Another key is not slowed by this one.
    other = api.client.post("/v1/decisions", json={"client_id": api.client_ids[0]},
                            headers=api.headers(Role.FRONT_OFFICE))
    assert other.status_code == 200


def test_a_batch_counts_as_its_clients(api: Api) -> None:
    headers = {"Authorization": f"Bearer {_key(api, rate_limit=30)}"}
    # Batches of 20 under a limit of 30 a second: within five quick ones, two share a second and the second is
    # refused.
    codes = [api.client.post("/v1/decisions/batch", json={"client_ids": api.client_ids[:20]}, headers=headers)
             for _ in range(5)]
    refused = [r for r in codes if r.status_code == 429]
    assert refused and all(r.json()["error"]["code"] == "rate_limited" for r in refused)


def test_a_batch_larger_than_the_whole_limit_is_refused_as_too_large_not_told_to_wait(api: Api) -> None:
    headers = {"Authorization": f"Bearer {_key(api, rate_limit=30)}"}
    response = api.client.post("/v1/decisions/batch", json={"client_ids": api.client_ids[:40]}, headers=headers)
    assert response.status_code == 422 and "Retry-After" not in response.headers
    assert response.json()["error"]["code"] == "batch_too_large" and "at most 30" in response.json()["error"]["message"]


def test_role_limits_take_overrides_and_refuse_unknown_roles() -> None:
    roles = [r.value for r in Role]
    limits = role_limits({"front_office": 7}, roles)
    assert limits["front_office"] == 7 and limits["compliance"] > 0 and set(limits) == set(roles)
    with pytest.raises(ValueError, match="unknown roles"):
        role_limits({"front_ofice": 7}, roles)
    with pytest.raises(ValueError, match="whole number"):
        role_limits({"front_office": -1}, roles)


def test_the_local_limiter_counts_per_window_and_zero_means_no_limit() -> None:
    limiter = Limiter()

    async def hits(bucket: str, limit: int, n: int) -> list[bool]:
        return [await limiter.hit(bucket, limit, 1.0) is None for _ in range(n)]

    now = time.time()
    if now % 1 > 0.8:  # keep the five hits inside one window
        time.sleep(1.05 - now % 1)
    assert asyncio.run(hits("k", 3, 5)) == [True, True, True, False, False]
    assert all(asyncio.run(hits("free", 0, 100)))


def test_sign_in_attempts_are_limited_per_address(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = api.client.app.state.runtime  # type: ignore[attr-defined]
    monkeypatch.setattr(runtime, "settings", runtime.settings.model_copy(update={"signin_attempts_per_minute": 3}))
    runtime.limiter._local.pop("signin:testclient", None)
    statuses = [api.client.post("/ui/login", data={"key": "crm_wrong_guess"}, follow_redirects=False).status_code
                for _ in range(5)]
    assert statuses[:3] == [401, 401, 401] and statuses[3:] == [429, 429]
    limited = api.client.post("/ui/login", data={"key": api.keys[Role.ADMIN]}, follow_redirects=False)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1  # even the right key, for now
    assert "rate_limited" in limited.text
    runtime.limiter._local.pop("signin:testclient", None)


def _sign_in(api: Api, key: str) -> str:
    api.client.cookies.clear()
    response = api.client.post("/ui/login", data={"key": key}, follow_redirects=False)
    assert response.status_code == 303
    return response.cookies["crm_ui_session"]


def _session_row(api: Api, session_id: str):
    engine = make_engine(api.settings.service_database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(web_sessions).where(
                web_sessions.c.session_sha256 == hashlib.sha256(session_id.encode()).hexdigest())).first()
    finally:
        engine.dispose()


def _page(api: Api, session_id: str, path: str = "/ui/") -> int:
    api.client.cookies.clear()
    api.client.cookies.set("crm_ui_session", session_id, path="/ui")
    return api.client.get(path, follow_redirects=False).status_code


def test_the_session_cookie_holds_a_random_id_kept_on_the_server(api: Api) -> None:
    key = _key(api, Role.COMPLIANCE, name="session holder")
    session_id = _sign_in(api, key)
    assert key.split("_")[2] not in session_id and session_id not in key
    row = _session_row(api, session_id)
    assert row is not None and row.key_id == key.split("_")[1]
    assert _page(api, session_id, "/ui/compliance") == 200
    assert _page(api, "a" * 43, "/ui/compliance") == 303  # a made-up id is no session


def test_signing_out_ends_the_session_on_the_server(api: Api) -> None:
    session_id = _sign_in(api, _key(api, Role.COMPLIANCE))
    csrf = api.client.get("/ui/compliance").text.split('name="csrf" value="')[1].split('"')[0]
    out = api.client.post("/ui/logout", data={"csrf": csrf}, follow_redirects=False)
    assert out.status_code == 303 and "signed+out" in out.headers["location"]
    assert _session_row(api, session_id) is None
    assert _page(api, session_id) == 303  # the old cookie, replayed, is refused


def test_an_idle_session_expires(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    session_id = _sign_in(api, _key(api, Role.COMPLIANCE))
    assert _page(api, session_id) == 200
    runtime = api.client.app.state.runtime  # type: ignore[attr-defined]
    monkeypatch.setattr(runtime, "settings", runtime.settings.model_copy(update={"session_idle_minutes": 0.01}))
    time.sleep(1.0)
    assert _page(api, session_id) == 303
    assert _session_row(api, session_id) is None


def test_revoking_a_key_drops_its_sessions(api: Api) -> None:
    key = _key(api, Role.COMPLIANCE)
    session_id = _sign_in(api, key)
    assert _page(api, session_id) == 200
    engine = make_engine(api.settings.service_database_url)
    assert revoke_key(engine, key.split("_")[1])
    engine.dispose()
    assert _session_row(api, session_id) is None
    assert _page(api, session_id) == 303
