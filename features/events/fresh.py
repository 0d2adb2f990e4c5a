"""The indicators a client's events keep exact between batch builds, computed from the client's recent history.

Each value is computed from the rows themselves (not by adding to a running total), with the same definition as
the batch build in :mod:`features.indicators`: a row counts in a ``w``-day window as of date ``D`` when its date is
in ``(D - w, D]``. The result therefore does not depend on the order the events arrived in, and a row leaves a
window exactly when the as-of date passes it. Indicators of these families that need other clients (branch and
broker figures) or month-end snapshots (returns, asset change) keep their batch value.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from features.indicators.client_feedback import CHANNELS
from features.indicators.client_flow import LARGE_WITHDRAWAL_YUAN, RECENCY_CAP_DAYS

HISTORY_DAYS = 365  # the longest window: rows older than this before the as-of date never count again
REACHED = ("reached", "interested")

FRESH_INDICATORS: dict[str, tuple[str, ...]] = {
    "client_flow": (
        *(f"{kind}_{w}d" for kind in ("inflow", "outflow", "net_flow") for w in (30, 90, 365)),
        "large_withdrawals_90d", "outflow_share_90d", "days_since_last_trade", "days_since_last_transfer",
        "dormant_90d",
    ),
    "client_value": (
        "commission_30d", "commission_90d", "commission_365d", "trade_count_30d", "trade_count_90d",
        "trade_count_365d", "trade_amount_90d", "trade_amount_365d", "active_month_share_365d", "tenure_days",
    ),
    "client_feedback": (
        "complaints_90d", "complaints_365d", "fee_complaints_365d", "open_complaints", "contacts_30d", "contacts_90d",
        *(f"contacts_{c}_90d" for c in CHANNELS), "contact_reached_share_90d", "days_since_last_contact",
    ),
}


@dataclass(frozen=True)
class Transfer:
    day: dt.date
    direction: str
    amount: float


@dataclass(frozen=True)
class TradeDay:
    """One or more trades of one day (the batch history is kept per day; an event is one trade)."""

    day: dt.date
    commission: float
    amount: float
    count: int = 1


@dataclass(frozen=True)
class Contact:
    day: dt.date
    channel: str
    outcome: str


@dataclass(frozen=True)
class Complaint:
    filed_on: dt.date | None  # None: only its resolution is known yet (it arrived first)
    category: str | None
    resolved_on: dt.date | None


@dataclass
class ClientHistory:
    """What the fresh indicators of one client are computed from."""

    opened_on: dt.date
    assets: float = 0.0  # total assets at the latest month-end snapshot
    transfers: list[Transfer] = field(default_factory=list)
    trades: list[TradeDay] = field(default_factory=list)
    contacts: list[Contact] = field(default_factory=list)
    complaints: dict[str, Complaint] = field(default_factory=dict)


def _since(days: Iterable[dt.date], as_of: dt.date, tenure: int) -> int:
    start = as_of - dt.timedelta(days=RECENCY_CAP_DAYS)
    recent = [d for d in days if start < d <= as_of]
    return (as_of - max(recent)).days if recent else min(tenure, RECENCY_CAP_DAYS)


def fresh_values(history: ClientHistory, as_of: dt.date) -> dict[str, dict[str, object]]:
    """Per family, the fresh indicators of one client as of ``as_of``."""
    tenure = (as_of - history.opened_on).days
    starts = {w: as_of - dt.timedelta(days=w) for w in (30, 90, 365)}
    flow: dict[str, object] = {}
    for w, start in starts.items():
        inside = [t for t in history.transfers if start < t.day <= as_of]
        inflow = math.fsum(t.amount for t in inside if t.direction == "in")
        outflow = math.fsum(t.amount for t in inside if t.direction == "out")
        flow[f"inflow_{w}d"], flow[f"outflow_{w}d"], flow[f"net_flow_{w}d"] = inflow, outflow, inflow - outflow
    flow["large_withdrawals_90d"] = sum(1 for t in history.transfers if t.direction == "out"
                                        and t.amount >= LARGE_WITHDRAWAL_YUAN and starts[90] < t.day <= as_of)
    moved = flow["outflow_90d"]
    assets = history.assets
    flow["outflow_share_90d"] = moved / (assets + moved) if assets + moved > 0 else 0.0  # type: ignore[operator]
    since_trade = _since((t.day for t in history.trades), as_of, tenure)
    since_transfer = _since((t.day for t in history.transfers), as_of, tenure)
    flow["days_since_last_trade"], flow["days_since_last_transfer"] = since_trade, since_transfer
    flow["dormant_90d"] = since_trade >= 90 and since_transfer >= 90

    value: dict[str, object] = {}
    for w, start in starts.items():
        inside_trades = [t for t in history.trades if start < t.day <= as_of]
        value[f"commission_{w}d"] = math.fsum(t.commission for t in inside_trades)
        value[f"trade_count_{w}d"] = sum(t.count for t in inside_trades)
        if w != 30:
            value[f"trade_amount_{w}d"] = math.fsum(t.amount for t in inside_trades)
    months = {(t.day.year, t.day.month) for t in history.trades if starts[365] < t.day <= as_of}
    months_open = max(1, min(12, math.ceil(tenure / 30.44)))
    value["active_month_share_365d"] = min(1.0, len(months) / months_open)
    value["tenure_days"] = tenure

    feedback: dict[str, object] = {}
    filed = [c.filed_on for c in history.complaints.values() if c.filed_on is not None and c.filed_on <= as_of]
    feedback["complaints_90d"] = sum(1 for day in filed if starts[90] < day)
    feedback["complaints_365d"] = sum(1 for day in filed if starts[365] < day)
    feedback["fee_complaints_365d"] = sum(1 for c in history.complaints.values() if c.category == "fees"
                                          and c.filed_on is not None and starts[365] < c.filed_on <= as_of)
    feedback["open_complaints"] = sum(1 for c in history.complaints.values()
                                      if c.filed_on is not None and c.filed_on <= as_of
                                      and (c.resolved_on is None or c.resolved_on > as_of))
    recent = [c for c in history.contacts if starts[90] < c.day <= as_of]
    feedback["contacts_30d"] = sum(1 for c in recent if starts[30] < c.day)
    feedback["contacts_90d"] = len(recent)
    for channel in CHANNELS:
        feedback[f"contacts_{channel}_90d"] = sum(1 for c in recent if c.channel == channel)
    reached = sum(1 for c in recent if c.outcome in REACHED)
    feedback["contact_reached_share_90d"] = reached / len(recent) if recent else 0.0
    feedback["days_since_last_contact"] = _since((c.day for c in history.contacts), as_of, tenure)
    return {"client_flow": flow, "client_value": value, "client_feedback": feedback}
