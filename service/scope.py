"""Who may see which clients and brokers: the one place the queue, the outcomes and their pages ask.

Today every key sees the whole firm. Scoped keys (a branch's or a broker's book) replace this function's body;
its callers already treat "may not see" exactly like "does not exist".
"""

from __future__ import annotations

from service.keys import Caller


def may_see(caller: Caller, *, client_id: str | None = None, broker_id: str | None = None,
            branch_id: str | None = None) -> bool:
    """Whether ``caller`` may see this client, broker or branch (every given one must be visible)."""
    return True
