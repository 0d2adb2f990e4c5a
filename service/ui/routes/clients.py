"""The front-office client view: one client's decision (audited like an API decision), scores, reasons, and the
indicators by family with their monthly history."""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from service.audited_decisions import decide_and_audit
from service.errors import ApiError
from service.ui.session import UI, FrontOfficeViewer, PageError
from service.ui.templating import render

router = APIRouter(prefix=f"{UI}/clients", include_in_schema=False)
CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


@router.get("", response_class=HTMLResponse)
def client_view(request: Request, viewer: FrontOfficeViewer, client_id: str = "") -> Response:
    client_id = client_id.strip().upper()
    if not client_id:
        return render(request, "client.html", viewer, client_id="", decision=None, families={})
    if not CLIENT_ID.match(client_id):
        return render(request, "client.html", viewer, 422, client_id=client_id[:40], decision=None, families={},
                      error=("request_invalid", "A client id is letters and digits, for example C0000003."))
    runtime = request.app.state.runtime
    try:
        decision, _ = decide_and_audit(runtime, viewer.caller, client_id, {"client_id": client_id})
    except ApiError as e:
        if e.code != "client_not_found":
            raise PageError(e.code, e.message, viewer) from None
        return render(request, "client.html", viewer, 404, client_id=client_id, decision=None, families={},
                      error=(e.code, f"No client {client_id} in the feature store. Check the id (for example "
                                     "C0000003)."))
    families = request.app.state.ui.client_history(client_id)
    return render(request, "client.html", viewer, client_id=client_id, decision=decision, families=families,
                  live=_live_values(runtime, client_id), events=runtime.events.journal.recent(client_id, 10))


def _live_values(runtime, client_id: str) -> dict[str, object]:
    """The client's indicators in the online store now (fresh from events where they were applied); empty when
    the store cannot be read (the page then shows the monthly history's latest values)."""
    served = runtime.served
    if served is None or served.reader is None:
        return {}
    try:
        found = served.reader.read(client_id)
    except Exception:  # noqa: BLE001 - the page shows the batch values instead
        return {}
    return found[0] if found else {}
