"""Signing in to the web pages with an API key, once per browser session, and the role gate of every page.

The session cookie holds a random nonce and the key itself (HttpOnly, SameSite=Strict, path /ui, no expiry: the
browser forgets it when it closes). Nothing is stored on the server, so any number of API workers serve the pages
without shared state, and a revoked key stops working at once because every request checks it with the same
:class:`~service.keys.KeyRing` as the API. Forms that change something carry a CSRF token, an HMAC of the nonce
under the key: only a page the signed-in browser itself loaded can know it, and SameSite=Strict keeps the cookie
off cross-site requests in the first place.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import Depends, Request, Response

from service.keys import Caller, Role, admitted

COOKIE = "crm_ui_session"
UI = "/ui"
# Where each role lands after signing in; admins see the index of every page.
HOME_BY_ROLE = {Role.COMPLIANCE: f"{UI}/compliance", Role.FRONT_OFFICE: f"{UI}/clients",
                Role.DATA_SCIENTIST: f"{UI}/models", Role.ADMIN: f"{UI}/", Role.INGEST: f"{UI}/"}


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


def _csrf(key: str, nonce: str) -> str:
    return hmac.new(key.encode(), f"ui-form:{nonce}".encode(), hashlib.sha256).hexdigest()


def start(response: Response, key: str, secure: bool) -> None:
    """Put a new session (a fresh nonce) for ``key`` into the browser."""
    response.set_cookie(COOKIE, f"{secrets.token_urlsafe(16)}.{key}", path=UI, httponly=True, samesite="strict",
                        secure=secure)


def end(response: Response) -> None:
    response.delete_cookie(COOKIE, path=UI, httponly=True, samesite="strict")


def _session(request: Request) -> tuple[str, str] | None:
    nonce, _, key = request.cookies.get(COOKIE, "").partition(".")
    return (nonce, key) if nonce and key else None


def current(request: Request) -> Viewer | None:
    """The signed-in viewer, or None when there is no session or its key is no longer valid."""
    found = _session(request)
    if found is None:
        return None
    nonce, key = found
    who = request.app.state.runtime.keys.check(key)
    return Viewer(who, _csrf(key, nonce)) if who is not None else None


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
            reason = "your key is no longer valid; sign in again" if _session(request) else ""
            raise SignInRequired(target, reason)
        if not viewer.may(*roles):
            needed = " or ".join(sorted(r.value for r in admitted(roles)))
            raise PageError("forbidden", f"Your key ({viewer.caller.name}, role {viewer.role.value}) may not open "
                                         f"this page; it needs the role {needed}.", viewer)
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
ManagerViewer = Annotated[Viewer, Depends(page(Role.FRONT_OFFICE))]  # branch and broker managers: front office
DataScientistViewer = Annotated[Viewer, Depends(page(Role.DATA_SCIENTIST))]
AnyViewer = Annotated[Viewer, Depends(page(*Role))]


def same_person(a: str, b: str) -> bool:
    """The rule history's notion of one person (case and spacing ignored); for hints only — the history itself
    refuses an author's approval."""
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()
