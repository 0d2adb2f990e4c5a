"""The web pages under ``/ui`` for compliance officers, front office, managers and data scientists.

Server-rendered HTML (Jinja2) with inline SVG charts and one small stylesheet and script, no external asset.
Every page is behind the same API keys and roles as the API: a key is pasted once per browser session
(:mod:`service.ui.session`), and a page its role may not open answers 403 with the API's stable code.
"""

from __future__ import annotations

import time

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from service.errors import status_for
from service.ui.data import UiData
from service.ui.routes import clients, compliance, managers, models, queue, signin
from service.ui.session import UI, PageError, SignInRequired, login_url
from service.ui.templating import HERE, render

STATUS = {"csrf_failed": 403, "features_not_built": 503}


class _UiData:
    """Creates the pages' data on first use (the runtime exists only once the app has started) and notes each
    page request, which keeps the warmer running."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, request: Request) -> None:
        request.state.ui_started = time.perf_counter()
        state = request.app.state
        ui = getattr(state, "ui", None)
        if ui is None or ui.runtime is not state.runtime:
            state.ui = ui = UiData(state.runtime)
        ui.used()


def install(app: FastAPI) -> None:
    """Add the pages, their static files and their error pages to the API app."""
    from fastapi import Depends

    prepare = Depends(_UiData(app))
    for module in (signin, compliance, clients, managers, models, queue):
        app.include_router(module.router, dependencies=[prepare])
    app.mount(f"{UI}/static", StaticFiles(directory=HERE / "static"), name="ui-static")

    @app.exception_handler(SignInRequired)
    async def sign_in(request: Request, exc: SignInRequired) -> Response:
        return RedirectResponse(login_url(exc.next_url, exc.reason), status_code=303)

    @app.exception_handler(PageError)
    async def page_error(request: Request, exc: PageError) -> Response:
        return render(request, "error.html", exc.viewer, STATUS.get(exc.code) or status_for(exc.code),
                      code=exc.code, message=exc.message)
