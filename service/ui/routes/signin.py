"""Sign in with an API key (once per browser session), sign out, and the index of the pages a key may open."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from service.limits import RateLimitedError
from service.ui import session
from service.ui.session import HOME_BY_ROLE, UI, AnyViewer
from service.ui.templating import render

router = APIRouter(prefix=UI, include_in_schema=False)


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str | None = None, reason: str = "") -> Response:
    return render(request, "login.html", session.current(request), next=session.safe_next(next) or "",
                  reason=reason[:200])


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    fields = await session.form(request)
    target = session.safe_next(fields.get("next"))
    if not session.same_origin(request):
        return render(request, "login.html", None, 403, next=target or "",
                      error=("forbidden", "The sign-in form must be sent from this site."))
    runtime = request.app.state.runtime
    try:
        address = request.client.host if request.client else "unknown"
        await runtime.limiter.check_signin(address, runtime.settings.signin_attempts_per_minute)
    except RateLimitedError as e:
        refused = render(request, "login.html", None, 429, next=target or "", error=(e.code, e.message))
        refused.headers["Retry-After"] = str(e.retry_after_s)
        return refused
    key = fields.get("key", "").strip()
    who = runtime.keys.check(key) if key else None
    if who is None:
        return render(request, "login.html", None, 401, next=target or "",
                      error=("unauthenticated", "That API key is not valid or was revoked. Paste the whole key "
                                                "(crm_<id>_<secret>) as `crm keys create` printed it."))
    response = RedirectResponse(target or HOME_BY_ROLE[who.role], status_code=303)
    session.start(request, response, who)
    return response


@router.post("/logout")
async def logout(request: Request, viewer: AnyViewer) -> Response:
    await session.checked_form(request, viewer)
    response = RedirectResponse(f"{UI}/login?reason=signed+out", status_code=303)
    session.end(request, response)
    return response


@router.get("", include_in_schema=False)
async def root() -> Response:
    return RedirectResponse(f"{UI}/", status_code=307)


@router.get("/", response_class=HTMLResponse)
async def index(request: Request, viewer: AnyViewer) -> Response:
    return render(request, "index.html", viewer)
