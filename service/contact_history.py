"""Each client's recent contacts, which the contact policy reads: the raw ``contacts`` table (as of the last
import) plus the outcomes recorded through the API since then.

Held in memory per worker, by client: only what the policy can look at (the last ``window_days``) is kept, so a
decision's check is a dictionary lookup and a short loop.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

# Outcome statuses recorded through the API, and what each means as a row of the raw contacts table.
STATUS_TO_CONTACT_OUTCOME = {"attempted": "no_answer", "not_reached": "no_answer", "reached": "reached",
                             "declined": "declined", "accepted": "interested"}
DECLINED = "declined"
# The campaign tag of a contact exported from a recorded outcome: ``nba:`` and the action.
CAMPAIGN_PREFIX = "nba:"


@dataclass(frozen=True)
class Contact:
    """One contact with a client: when, through which channel, for which action (when known), with what result."""

    on: dt.date
    channel: str
    action: str | None
    outcome: str  # a raw contacts outcome: reached, no_answer, interested, declined


class ContactHistory:
    """Recent contacts by client id; outcomes are added as they are recorded."""

    def __init__(self, window_days: int = 365) -> None:
        self.window_days = window_days
        self._by_client: dict[str, list[Contact]] = {}
        self._lock = threading.Lock()
        self.raw_mtime: float | None = None

    def of(self, client_id: str) -> list[Contact]:
        return self._by_client.get(client_id, [])

    def add(self, client_id: str, contact: Contact) -> None:
        with self._lock:
            self._by_client.setdefault(client_id, []).append(contact)

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_client.values())

    def load_raw(self, raw_dir: Path, today: dt.date) -> int:
        """Read the raw contacts of the last ``window_days``. The action a contact delivered is its ``action``
        column where the raw tables have one, else an exported outcome's ``campaign`` tag (``nba:ACTION``)."""
        path = raw_dir / "contacts.parquet"
        try:
            self.raw_mtime = os.stat(path).st_mtime
        except FileNotFoundError:
            return 0
        since = today - dt.timedelta(days=self.window_days)
        names = pq.read_schema(path).names
        optional = [c for c in ("campaign", "action") if c in names]
        table = pq.read_table(path, columns=["client_id", "contact_date", "channel", "outcome", *optional],
                              filters=[("contact_date", ">=", since)]).to_pydict()
        rows = len(table["client_id"])
        actions = table.get("action") or [None] * rows
        campaigns = table.get("campaign") or [None] * rows
        n = 0
        for client_id, on, channel, outcome, action, campaign in zip(
                table["client_id"], table["contact_date"], table["channel"], table["outcome"], actions, campaigns,
                strict=True):
            if not action and campaign and campaign.startswith(CAMPAIGN_PREFIX):
                action = campaign[len(CAMPAIGN_PREFIX):]
            self.add(client_id, Contact(on, channel, action or None, outcome))
            n += 1
        return n
