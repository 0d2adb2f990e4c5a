"""The indicators a client's events keep exact between batch builds, computed from the clients' recent history.

Each value is computed from the rows themselves (not by adding to a running total), with the same definition as
the batch build in :mod:`features.indicators`: a row counts in a ``w``-day window as of date ``D`` when its date is
in ``(D - w, D]``. The result therefore does not depend on the order the events arrived in, and a row leaves a
window exactly when the as-of date passes it. Indicators of these families that need other clients (branch and
broker figures) or month-end snapshots (returns, asset change) keep their batch value.

The definition is one SQL aggregation per kind of row (transfers, trades, contacts, complaints) over the
``history`` and ``seeded`` tables of the event journal (:mod:`features.events.journal`), run for a whole batch of
clients at once: the sums and counts are made in SQLite's own loop, not row by row in Python (an application of
thousands of events recomputes thousands of clients), and a row is tested only against its own kind's windows.
The rows of a client are read in key order (an index on client, kind and row key), so a sum of amounts is the
same whatever order its rows were inserted in. :func:`fresh_values` computes one client's values from a
:class:`ClientHistory` through the same queries.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import sqlite3
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



_WINDOWS = (30, 90, 365)


def _when(condition: str, then: str, otherwise: str | None = None) -> str:
    tail = f" ELSE {otherwise}" if otherwise is not None else ""
    return f"CASE WHEN {condition} THEN {then}{tail} END"


def _kind_query(kind: str, columns: list[str]) -> str:
    """Per wanted client with rows of ``kind`` in the last year: ``columns`` aggregated over them (each kind its own
    query, so a row is tested only against its own kind's windows: most rows are trades and transfers)."""
    return (f"SELECT w.client_id, {', '.join(columns)} FROM fresh_wanted w "
            f"JOIN history h INDEXED BY history_by_client ON h.client_id = w.client_id AND h.kind = '{kind}' "
            "AND h.day <= :d AND h.day > :oldest GROUP BY w.client_id")


_TRANSFERS_QUERY = _kind_query("t", [
    *(f"TOTAL({_when(f'h.a = {d!r} AND h.day > :s{w}', 'h.x')})" for w in _WINDOWS for d in ("in", "out")),
    "SUM(" + _when("h.a = 'out' AND h.x >= :large AND h.day > :s90", "1", "0") + ")",
    f"MAX({_when('h.day > :scap', 'h.day')})",
])
# Trades: one row per trade, or per day of the batch history with its count.
_TRADES_QUERY = _kind_query("x", [
    *(column for w in _WINDOWS for column in (f"TOTAL({_when(f'h.day > :s{w}', 'h.x')})",
                                              f"SUM({_when(f'h.day > :s{w}', 'h.n', '0')})",
                                              f"TOTAL({_when(f'h.day > :s{w}', 'h.y')})")),
    f"COUNT(DISTINCT {_when('h.day > :s365', 'substr(h.day, 1, 7)')})",
    f"MAX({_when('h.day > :scap', 'h.day')})",
])
_CONTACTS_QUERY = _kind_query("c", [
    *(f"SUM({_when(f'h.day > :s{w}', '1', '0')})" for w in (30, 90)),
    *(f"SUM({_when(f'h.day > :s90 AND h.a = {c!r}', '1', '0')})" for c in CHANNELS),
    f"SUM({_when('h.day > :s90 AND h.b IN ' + repr(REACHED), '1', '0')})",
    f"MAX({_when('h.day > :scap', 'h.day')})",
])
# What a client without rows of a kind in the last year gets (as the aggregates give over no rows).
_NO_TRANSFERS = (*(0.0,) * (2 * len(_WINDOWS)), 0, None)
_NO_TRADES = (*(0.0, 0, 0.0) * len(_WINDOWS), 0, None)
_NO_CONTACTS = (*(0,) * (2 + len(CHANNELS) + 1), None)
_SEEDED_QUERY = ("SELECT w.client_id, s.opened_on, s.assets FROM fresh_wanted w "
                 "JOIN seeded s ON s.client_id = w.client_id")


# A complaint's resolution may be an event of its own (kind 'r', same key), arrived before or after its filing.
_COMPLAINTS_QUERY = (
    "SELECT w.client_id, SUM(CASE WHEN p.day > :s90 THEN 1 ELSE 0 END), SUM(CASE WHEN p.day > :s365 THEN 1 ELSE 0 END),"
    " SUM(CASE WHEN p.a = 'fees' AND p.day > :s365 THEN 1 ELSE 0 END),"
    " SUM(CASE WHEN COALESCE(r.day, p.b) IS NULL OR COALESCE(r.day, p.b) > :d THEN 1 ELSE 0 END) "
    "FROM fresh_wanted w JOIN history p INDEXED BY history_by_client ON p.client_id = w.client_id AND p.kind = 'p' "
    "AND p.day <= :d LEFT JOIN history r ON r.kind = 'r' AND r.row_key = p.row_key AND r.client_id = p.client_id "
    "GROUP BY w.client_id")


@functools.lru_cache(maxsize=4096)
def _day(text: str) -> dt.date:
    """A date from its ISO text (histories hold a few hundred distinct days: parsed once each)."""
    return dt.date.fromisoformat(text)


def _since(latest: str | None, as_of: dt.date, tenure: int) -> int:
    """Days since the latest day within the recency cap (the tenure, capped, when there is none)."""
    return (as_of - _day(latest)).days if latest else min(tenure, RECENCY_CAP_DAYS)


def fresh_values_of(conn: sqlite3.Connection, client_ids: Iterable[str], as_of: dt.date
                    ) -> dict[str, dict[str, dict[str, object]]]:
    """Per seeded client among ``client_ids``, per family, its fresh indicators as of ``as_of`` (computed from the
    ``history`` and ``seeded`` tables of ``conn``; clients not seeded are left out)."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS fresh_wanted (client_id TEXT PRIMARY KEY) WITHOUT ROWID")
    conn.execute("DELETE FROM temp.fresh_wanted")
    conn.executemany("INSERT OR IGNORE INTO temp.fresh_wanted VALUES (?)", ((c,) for c in client_ids))
    bounds = {f"s{w}": (as_of - dt.timedelta(days=w)).isoformat() for w in _WINDOWS}
    oldest = as_of - dt.timedelta(days=max(*_WINDOWS, RECENCY_CAP_DAYS))
    params = {**bounds, "d": as_of.isoformat(), "scap": (as_of - dt.timedelta(days=RECENCY_CAP_DAYS)).isoformat(),
              "oldest": oldest.isoformat(), "large": LARGE_WITHDRAWAL_YUAN}
    complaints = {row[0]: row[1:] for row in conn.execute(_COMPLAINTS_QUERY, params)}
    transfers = {row[0]: row[1:] for row in conn.execute(_TRANSFERS_QUERY, params)}
    trades = {row[0]: row[1:] for row in conn.execute(_TRADES_QUERY, params)}
    contacts = {row[0]: row[1:] for row in conn.execute(_CONTACTS_QUERY, params)}
    out: dict[str, dict[str, dict[str, object]]] = {}
    no_complaints = (0, 0, 0, 0)
    for client_id, opened_on, assets in conn.execute(_SEEDED_QUERY):
        tenure = (as_of - _day(opened_on)).days
        row = transfers.get(client_id, _NO_TRANSFERS)
        flow: dict[str, object] = {}
        k = 0
        for w in _WINDOWS:
            inflow, outflow = row[k], row[k + 1]
            flow[f"inflow_{w}d"], flow[f"outflow_{w}d"], flow[f"net_flow_{w}d"] = inflow, outflow, inflow - outflow
            k += 2
        flow["large_withdrawals_90d"] = row[k]
        last_transfer = row[k + 1]
        row = trades.get(client_id, _NO_TRADES)
        value: dict[str, object] = {}
        k = 0
        for w in _WINDOWS:
            value[f"commission_{w}d"], value[f"trade_count_{w}d"] = row[k], row[k + 1]
            if w != 30:
                value[f"trade_amount_{w}d"] = row[k + 2]
            k += 3
        months, last_trade = row[k], row[k + 1]
        moved = flow["outflow_90d"]
        flow["outflow_share_90d"] = moved / (assets + moved) if assets + moved > 0 else 0.0  # type: ignore[operator]
        since_trade, since_transfer = _since(last_trade, as_of, tenure), _since(last_transfer, as_of, tenure)
        flow["days_since_last_trade"], flow["days_since_last_transfer"] = since_trade, since_transfer
        flow["dormant_90d"] = since_trade >= 90 and since_transfer >= 90
        value["active_month_share_365d"] = min(1.0, months / max(1, min(12, math.ceil(tenure / 30.44))))
        value["tenure_days"] = tenure
        filed_90, filed_365, fees_365, still_open = complaints.get(client_id, no_complaints)
        row = contacts.get(client_id, _NO_CONTACTS)
        contacts_30, contacts_90 = row[0], row[1]
        k = 2
        feedback: dict[str, object] = {"complaints_90d": filed_90, "complaints_365d": filed_365,
                                       "fee_complaints_365d": fees_365, "open_complaints": still_open,
                                       "contacts_30d": contacts_30, "contacts_90d": contacts_90}
        for channel in CHANNELS:
            feedback[f"contacts_{channel}_90d"] = row[k]
            k += 1
        feedback["contact_reached_share_90d"] = row[k] / contacts_90 if contacts_90 else 0.0
        feedback["days_since_last_contact"] = _since(row[k + 1], as_of, tenure)
        out[client_id] = {"client_flow": {n: flow[n] for n in FRESH_INDICATORS["client_flow"]},
                          "client_value": {n: value[n] for n in FRESH_INDICATORS["client_value"]},
                          "client_feedback": {n: feedback[n] for n in FRESH_INDICATORS["client_feedback"]}}
    return out




def history_rows(client_id: str, history: ClientHistory) -> list[tuple]:
    """The ``history`` table rows of one client's :class:`ClientHistory`. Each row's key is made from its place
    among its kind's rows sorted by content, as an event's key is its id: the rows are read in the same order
    whatever order the lists hold them in."""
    rows: list[tuple] = []
    for kind, content in (
            ("t", sorted((t.day.isoformat(), t.direction, None, t.amount, None, 1) for t in history.transfers)),
            ("x", sorted((x.day.isoformat(), None, None, x.commission, x.amount, x.count) for x in history.trades)),
            ("c", sorted((c.day.isoformat(), c.channel, c.outcome, None, None, 1) for c in history.contacts))):
        rows += [(kind, f"{kind}{k:06d}", client_id, *fields) for k, fields in enumerate(content)]
    for key, p in history.complaints.items():
        if p.filed_on is not None:
            rows.append(("p", key, client_id, p.filed_on.isoformat(), p.category, None, None, None, 1))
        if p.resolved_on is not None:
            rows.append(("r", key, client_id, p.resolved_on.isoformat(), None, None, None, None, 1))
    return rows


def fresh_values(history: ClientHistory, as_of: dt.date) -> dict[str, dict[str, object]]:
    """Per family, the fresh indicators of one client as of ``as_of`` (the same query, on a database of its own)."""
    from features.events.journal import SCHEMA

    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        conn.executescript(SCHEMA)
        conn.execute("INSERT INTO seeded VALUES ('c', ?, ?, NULL, NULL)",
                     (history.opened_on.isoformat(), history.assets))
        conn.executemany("INSERT INTO history VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", history_rows("c", history))
        return fresh_values_of(conn, ["c"], as_of)["c"]
    finally:
        conn.close()
