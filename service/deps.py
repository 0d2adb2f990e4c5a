"""Dependencies shared by the routes, as ``Annotated`` aliases: the runtime and the authenticated caller.

Every authenticated request counts against its key's rate limit here (429 ``rate_limited``). They are ``async``
on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, and those hops cost more
than the decision itself. They do no blocking work (known keys are cached; a miss reads one row).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from service import scope
from service.errors import ApiError
from service.keys import Caller, Role, admitted
from service.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def caller(request: Request) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError("unauthenticated", "send an API key as `Authorization: Bearer KEY` (`crm keys create`)")
    found = request.app.state.runtime.keys.check(key.strip())
    if found is None:
        raise ApiError("unauthenticated", "the API key is not valid or was revoked")
    request.state.caller = found
    return found


def require(*roles: Role) -> Callable[[Request], Awaitable[Caller]]:
    """A dependency admitting callers with one of ``roles`` (admins always), within their key's rate limit.
    What they may see inside their role is :mod:`service.scope`'s business."""
    needed = " or ".join(sorted(r.value for r in admitted(roles)))

    async def check(request: Request) -> Caller:
        who = caller(request)
        if not who.may(*roles):
            raise ApiError("forbidden", f"role {who.role.value} may not do this; it needs {needed}")
        await request.app.state.runtime.charge(who)
        return who

    return check


FrontOffice = Annotated[Caller, Depends(require(Role.FRONT_OFFICE))]
# Work queues and scorecards: brokers (front office) and branch managers, each within their scope.
FrontOfficeOrManager = Annotated[Caller, Depends(require(Role.FRONT_OFFICE, Role.BRANCH_MANAGER))]
DataScientist = Annotated[Caller, Depends(require(Role.DATA_SCIENTIST))]
Compliance = Annotated[Caller, Depends(require(Role.COMPLIANCE))]


async def _firm_compliance(who: Compliance) -> Caller:
    scope.ensure_firm_wide(who, "act on rulesets")
    return who


FirmCompliance = Annotated[Caller, Depends(_firm_compliance)]  # rulesets are the whole firm's policy
Ingest = Annotated[Caller, Depends(require(Role.INGEST))]
