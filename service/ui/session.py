"""Signing in to the web pages with an API key, server-side sessions, and the role gate of every page.

Signing in checks the key once and starts a session: the cookie holds only a random session id (32 bytes;
HttpOnly, SameSite=Strict, path /ui), and the session lives in the service database (``web_sessions``, only a
SHA-256 of the id), so any API worker or replica can check it and a stolen database row cannot be replayed as a
cookie. A session ends at sign-out, after ``CRM_SESSION_IDLE_MINUTES`` without a page request, and when its key is
revoked (``crm keys revoke`` deletes its sessions; every request also checks the key is still valid). Forms that
change something carry the session's CSRF token (random, stored with the session): only a page the signed-in
browser itself loaded can know it, and SameSite=Strict keeps the cookie off cross-site requests in the first place.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qs, quote, urlsplit

import sqlalchemy as sa
from fastapi import Depends, Request, Response

from service.db import web_sessions
from service.keys import Caller, Role, admitted
from service.limits import RateLimitedError
from service.scope import Scope

COOKIE = "crm_ui_session"
UI = "/ui"
# Where each role lands after signing in; admins see the index of every page.
HOME_BY_ROLE = {Role.COMPLIANCE: f"{UI}/compliance", Role.FRONT_OFFICE: f"{UI}/clients",
                Role.BRANCH_MANAGER: f"{UI}/managers/brokers", Role.DATA_SCIENTIST: f"{UI}/models",
                Role.ADMIN: f"{UI}/", Role.INGEST: f"{UI}/"}
TOUCH_EVERY_S = 30.0  # a session's last use is written at most this often (the idle expiry's precision)


class SignInRequired(Exception):
    """No session, or its key no longer works: the browser goes to the sign-in page and comes back."""

    def __init__(self, next_url: str, reason: str = "") -> None:
        self.next_url = next_url
        self.reason = reason
        super().__init__(reason or "sign in first")


class PageError(Exception):
    """A page refused with a stable code (the API's codes), shown on an error page with its HTTP status."""

    def __init__(self, code: str, message: str, viewer: Viewer | None = None) -> None:
        self.code = code
        self.message = message
        self.viewer = viewer
        super().__init__(message)


@dataclass(frozen=True)
class Viewer:
    """The signed-in person: who, with which role, and the token their forms must carry."""

    caller: Caller
    csrf: str

    @property
    def role(self) -> Role:
        return self.caller.role

    def may(self, *roles: Role) -> bool:
        return self.caller.may(*roles)

    @property
    def scope(self) -> Scope:
        return self.caller.scope


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _idle_s(request: Request) -> float:
    return request.app.state.runtime.settings.session_idle_minutes * 60


def start(request: Request, response: Response, who: Caller) -> None:
    """Start a session for ``who`` (replacing the browser's previous one) and put its id into the browser."""
    engine = request.app.state.runtime.db
    session_id = secrets.token_urlsafe(32)
    now = time.time()
    with engine.begin() as conn:
        old = request.cookies.get(COOKIE)
        if old:
            conn.execute(web_sessions.delete().where(web_sessions.c.session_sha256 == _digest(old)))
        # Sessions left idle (browsers that never came back) are cleared here, so the table stays small.
        conn.execute(web_sessions.delete().where(web_sessions.c.last_seen_at < now - _idle_s(request)))
        conn.execute(web_sessions.insert().values(session_sha256=_digest(session_id), key_id=who.key_id,
                                                  csrf=secrets.token_urlsafe(24), created_at=now, last_seen_at=now))
    response.set_cookie(COOKIE, session_id, path=UI, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")


def end(request: Request, response: Response) -> None:
    """End the browser's session on the server and forget its cookie."""
    session_id = request.cookies.get(COOKIE)
    if session_id:
        with request.app.state.runtime.db.begin() as conn:
            conn.execute(web_sessions.delete().where(web_sessions.c.session_sha256 == _digest(session_id)))
    response.delete_cookie(COOKIE, path=UI, httponly=True, samesite="strict")


def current(request: Request) -> Viewer | None:
    """The signed-in viewer, or None when there is no session, it expired or ended, or its key was revoked."""
    session_id = request.cookies.get(COOKIE)
    if not session_id:
        return None
    runtime = request.app.state.runtime
    digest = _digest(session_id)
    with runtime.db.connect() as conn:
        row = conn.execute(sa.select(web_sessions.c.key_id, web_sessions.c.csrf, web_sessions.c.last_seen_at)
                           .where(web_sessions.c.session_sha256 == digest)).first()
    if row is None:
        return None
    now, idle = time.time(), _idle_s(request)
    if now - row.last_seen_at > idle:
        with runtime.db.begin() as conn:
            conn.execute(web_sessions.delete().where(web_sessions.c.session_sha256 == digest))
        return None
    who = runtime.keys.caller(row.key_id)
    if who is None:
        return None
    if now - row.last_seen_at > min(TOUCH_EVERY_S, idle / 4):
        with runtime.db.begin() as conn:
            conn.execute(web_sessions.update().where(web_sessions.c.session_sha256 == digest)
                         .values(last_seen_at=now))
    return Viewer(who, row.csrf)


def safe_next(url: str | None) -> str | None:
    """A place inside the web pages to return to; anything else (another site, a scheme) is dropped."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or not (parts.path == UI or parts.path.startswith(f"{UI}/")):
        return None
    if parts.path.startswith(f"{UI}/login") or "\\" in url:
        return None
    return url


def page(*roles: Role) -> Callable[[Request], Awaitable[Viewer]]:
    """A dependency admitting signed-in viewers with one of ``roles`` (admins always), like the API's ``require``."""

    async def check(request: Request) -> Viewer:
        viewer = current(request)
        if viewer is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            reason = ("your session ended (idle, signed out elsewhere, or its key was revoked); sign in again"
                      if request.cookies.get(COOKIE) else "")
            raise SignInRequired(target, reason)
        if not viewer.may(*roles):
            needed = " or ".join(sorted(r.value for r in admitted(roles)))
            raise PageError("forbidden", f"Your key ({viewer.caller.name}, role {viewer.role.value}) may not open "
                                         f"this page; it needs the role {needed}.", viewer)
        try:
            await request.app.state.runtime.charge(viewer.caller)
        except RateLimitedError as e:
            raise PageError(e.code, f"Too many requests with your key: {e.message}.", viewer) from None
        request.state.caller = viewer.caller
        return viewer

    return check


async def form(request: Request) -> dict[str, str]:
    """The fields of a URL-encoded form (the pages post nothing else), one value per name."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}


def same_origin(request: Request) -> bool:
    """False when the browser says the form came from another site (Origin, else Referer)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if source is None:
        return True  # neither sent (some privacy settings): the CSRF token and SameSite=Strict still hold
    if source == "null":
        return False  # an opaque origin: a sandboxed frame or a redirect from elsewhere
    return urlsplit(source).netloc == request.headers.get("host", "")


async def checked_form(request: Request, viewer: Viewer) -> dict[str, str]:
    """The form of a signed-in viewer, refused unless it carries their CSRF token and comes from these pages."""
    fields = await form(request)
    if not same_origin(request) or not hmac.compare_digest(fields.get("csrf", ""), viewer.csrf):
        raise PageError("csrf_failed", "This form did not come from a page of this session (or the session "
                                       "changed). Reload the page and try again.", viewer)
    return fields


def login_url(next_url: str | None, reason: str = "") -> str:
    url = f"{UI}/login"
    query = [f"next={quote(next_url, safe='')}"] if next_url else []
    query += [f"reason={quote(reason, safe='')}"] if reason else []
    return url + ("?" + "&".join(query) if query else "")


ComplianceViewer = Annotated[Viewer, Depends(page(Role.COMPLIANCE))]
FrontOfficeViewer = Annotated[Viewer, Depends(page(Role.FRONT_OFFICE))]
ManagerViewer = Annotated[Viewer, Depends(page(Role.BRANCH_MANAGER))]
DataScientistViewer = Annotated[Viewer, Depends(page(Role.DATA_SCIENTIST))]
AnyViewer = Annotated[Viewer, Depends(page(*Role))]


def same_person(a: str, b: str) -> bool:
    """The rule history's notion of one person (case and spacing ignored); for hints only — the history itself
    refuses an author's approval."""
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()
