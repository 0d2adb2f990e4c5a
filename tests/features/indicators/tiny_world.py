"""A brokerage small enough to work every indicator out by hand: one branch, two brokers, three clients.

Trading days are the weekdays from 2023-12-29 to 2024-03-29. The index rises by 3 points a day. Stock S1 stays at
10 yuan, S2 lists on 2024-01-15 (IPO price 15, first close 20) and then rises 1% a day, S3 (ST) alternates
between 5.0 and 5.1.

- C1 (individual, broker K1, opened 2020-01-01, 0.03% commission, C3 assessed 2022-01-01) holds 5,000 S1 at the
  start, buys S3 on 01-03 and sells it on 01-29, buys S2 on 01-16 (two days after reading a report on it) and on
  02-01, sells 2,000 S1 on 03-04, buys S3 on 03-25; transfers 30,000 in on 01-05 and 60,000 out on 03-15.
- C2 (broker-introduced, K1, opened 2024-02-10, C4) deposits 5,000, buys 100 S1 on 02-20, sells them on 03-28.
- C3 (institution, K2, opened 2015-06-01) sells 10,000 S1 on 01-10, moves its cash out on 03-18, closes 03-20.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from features.raw.store import write_table

D = dt.date
DAYS = [d.date() for d in pd.bdate_range("2023-12-29", "2024-03-29")]
RATES = {"C1": 0.0003, "C2": 0.00025, "C3": 0.0001}
S2_LISTED = D(2024, 1, 15)


def index_close(day: dt.date) -> float:
    return 3000.0 + 3.0 * DAYS.index(day)


def close(security: str, day: dt.date) -> float:
    if security == "600001":
        return 10.0
    if security == "300001":
        return 20.0 * 1.01 ** (DAYS.index(day) - DAYS.index(S2_LISTED))
    return 5.0 if DAYS.index(day) % 2 == 0 else 5.1


def last_close(security: str, day: dt.date) -> float:
    return close(security, max(d for d in DAYS if d <= day))


# (trade_id, client, security, date, side, quantity)
TRADES = [
    (1, "C1", "600002", D(2024, 1, 3), "buy", 1000),
    (2, "C3", "600001", D(2024, 1, 10), "sell", 10000),
    (3, "C1", "300001", D(2024, 1, 16), "buy", 1000),
    (4, "C1", "600002", D(2024, 1, 29), "sell", 1000),
    (5, "C1", "300001", D(2024, 2, 1), "buy", 500),
    (6, "C2", "600001", D(2024, 2, 20), "buy", 100),
    (7, "C1", "600001", D(2024, 3, 4), "sell", 2000),
    (8, "C1", "600002", D(2024, 3, 25), "buy", 1000),
    (9, "C2", "600001", D(2024, 3, 28), "sell", 100),
]
TRANSFERS = [
    (1, "C1", D(2024, 1, 5), "in", 30_000.0),
    (2, "C2", D(2024, 2, 10), "in", 5_000.0),
    (3, "C1", D(2024, 3, 15), "out", 60_000.0),
]
MONTH_ENDS = [D(2023, 12, 31), D(2024, 1, 31), D(2024, 2, 29), D(2024, 3, 31)]
FIRST_BOUGHT = {("C1", "600001"): D(2023, 6, 30), ("C3", "600001"): D(2022, 1, 1)}


def trade_frame() -> pd.DataFrame:
    rows = []
    for trade_id, client, security, day, side, quantity in TRADES:
        price = close(security, day)
        amount = round(quantity * price, 2)
        rows.append({
            "trade_id": trade_id, "client_id": client, "security_id": security, "trade_date": pd.Timestamp(day),
            "side": side, "quantity": quantity, "price": price, "amount": amount,
            "commission": round(max(5.0, amount * RATES[client]), 2),
            "stamp_duty": round(amount * 0.0005, 2) if side == "sell" else 0.0,
        })
    return pd.DataFrame(rows)


def _ledgers() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Month-end snapshots and positions that follow from the opening state, the trades and the transfers."""
    cash = {"C1": 50_000.0, "C3": 0.0}
    holdings = {("C1", "600001"): 5000, ("C3", "600001"): 10000}
    first = dict(FIRST_BOUGHT)
    opened = {"C1": D(2020, 1, 1), "C2": D(2024, 2, 10), "C3": D(2015, 6, 1)}
    trades = trade_frame()
    snaps, positions = [], []
    events = sorted(
        [(row.trade_date.date(), "trade", row) for row in trades.itertuples()]
        + [(day, "transfer", (client, direction, amount)) for _, client, day, direction, amount in TRANSFERS],
        key=lambda e: e[0],
    )
    pending = list(events)
    for month_end in MONTH_ENDS:
        while pending and pending[0][0] <= month_end:
            day, kind, item = pending.pop(0)
            if kind == "transfer":
                client, direction, amount = item
                cash[client] = round(cash.get(client, 0.0) + (amount if direction == "in" else -amount), 2)
                continue
            key = (item.client_id, item.security_id)
            if item.side == "buy":
                cash[item.client_id] = round(cash[item.client_id] - item.amount - item.commission, 2)
                holdings[key] = holdings.get(key, 0) + item.quantity
                first.setdefault(key, day)
            else:
                cash[item.client_id] = round(cash[item.client_id] + item.amount - item.commission - item.stamp_duty, 2)
                holdings[key] -= item.quantity
                if holdings[key] == 0:
                    del holdings[key]
                    first.pop(key, None)
        for client in ("C1", "C2", "C3"):
            if opened[client] > month_end or (client == "C3" and month_end >= D(2024, 3, 20)):
                continue
            value = 0.0
            for (owner, security), quantity in sorted(holdings.items()):
                if owner != client:
                    continue
                market_value = round(quantity * last_close(security, month_end), 2)
                value += market_value
                positions.append({"client_id": client, "snapshot_date": pd.Timestamp(month_end),
                                  "security_id": security, "quantity": quantity, "cost_price": 9.0,
                                  "market_value": market_value,
                                  "first_bought_on": pd.Timestamp(first[(owner, security)])})
            snaps.append({"client_id": client, "snapshot_date": pd.Timestamp(month_end), "cash": cash[client],
                          "market_value": round(value, 2), "total_assets": round(cash[client] + value, 2)})
    return pd.DataFrame(snaps), pd.DataFrame(positions)


def write_tiny_world(raw_dir: Path) -> Path:
    ts = pd.Timestamp
    write_table(raw_dir, "branches", pd.DataFrame([{"branch_id": "B1", "name": "Suzhou 1", "city": "Suzhou",
                                                    "opened_on": ts("2000-01-01")}]))
    write_table(raw_dir, "brokers", pd.DataFrame([{"broker_id": "K1", "branch_id": "B1", "hired_on": ts("2010-01-01")},
                                                 {"broker_id": "K2", "branch_id": "B1", "hired_on": ts("2012-01-01")}]))
    write_table(raw_dir, "clients", pd.DataFrame([
        {"client_id": "C1", "client_type": "individual", "branch_id": "B1", "broker_id": "K1",
         "opened_on": ts("2020-01-01"), "closed_on": pd.NaT, "commission_rate": RATES["C1"], "risk_level": "C3",
         "risk_assessed_on": ts("2022-01-01"), "birth_year": 1970},
        {"client_id": "C2", "client_type": "broker_introduced", "branch_id": "B1", "broker_id": "K1",
         "opened_on": ts("2024-02-10"), "closed_on": pd.NaT, "commission_rate": RATES["C2"], "risk_level": "C4",
         "risk_assessed_on": ts("2024-02-10"), "birth_year": 1990},
        {"client_id": "C3", "client_type": "institution", "branch_id": "B1", "broker_id": "K2",
         "opened_on": ts("2015-06-01"), "closed_on": ts("2024-03-20"), "commission_rate": RATES["C3"],
         "risk_level": "C2", "risk_assessed_on": ts("2023-06-01"), "birth_year": None},
    ]).astype({"birth_year": "Int64"}))
    write_table(raw_dir, "securities", pd.DataFrame([
        {"security_id": "600001", "name": "BANK1", "exchange": "SH", "board": "main", "industry": "banks",
         "listed_on": ts("2010-01-04"), "is_st": False},
        {"security_id": "300001", "name": "ELEC1", "exchange": "SZ", "board": "chinext", "industry": "electronics",
         "listed_on": ts(S2_LISTED), "is_st": False},
        {"security_id": "600002", "name": "STEEL1", "exchange": "SH", "board": "main", "industry": "steel",
         "listed_on": ts("2005-01-04"), "is_st": True},
    ]))
    prices = []
    for security in ("600001", "300001", "600002"):
        listed = [d for d in DAYS if security != "300001" or d >= S2_LISTED]
        for k, day in enumerate(listed):
            previous = 15.0 if (security == "300001" and k == 0) else close(security, listed[max(k - 1, 0)])
            prices.append({"security_id": security, "trade_date": ts(day), "close": close(security, day),
                           "prev_close": previous, "volume": 1000, "amount": 1000 * close(security, day),
                           "is_suspended": False})
    write_table(raw_dir, "daily_prices", pd.DataFrame(prices))
    closes = np.array([index_close(d) for d in DAYS])
    write_table(raw_dir, "market_index", pd.DataFrame({
        "trade_date": pd.to_datetime(DAYS), "close": closes,
        "pct_change": np.concatenate([[0.0], closes[1:] / closes[:-1] - 1]), "amount": 1e9}))
    write_table(raw_dir, "trades", trade_frame())
    transfers = pd.DataFrame(TRANSFERS, columns=["transfer_id", "client_id", "transfer_date", "direction", "amount"])
    c3_out = pd.DataFrame([{"transfer_id": 4, "client_id": "C3", "transfer_date": D(2024, 3, 18), "direction": "out",
                            "amount": _c3_cash()}])
    transfers = pd.concat([transfers, c3_out], ignore_index=True)
    transfers["transfer_date"] = pd.to_datetime(transfers["transfer_date"])
    write_table(raw_dir, "cash_transfers", transfers)
    snaps, positions = _ledgers()
    write_table(raw_dir, "account_snapshots", snaps)
    write_table(raw_dir, "positions", positions)
    write_table(raw_dir, "contacts", pd.DataFrame([
        {"contact_id": 1, "client_id": "C1", "broker_id": "K1", "contact_date": ts("2024-01-10"), "channel": "phone",
         "outcome": "reached"},
        {"contact_id": 2, "client_id": "C3", "broker_id": "K2", "contact_date": ts("2024-02-01"), "channel": "phone",
         "outcome": "declined"},
        {"contact_id": 3, "client_id": "C1", "broker_id": "K1", "contact_date": ts("2024-03-10"), "channel": "wechat",
         "outcome": "no_answer"},
        {"contact_id": 4, "client_id": "C1", "broker_id": "K1", "contact_date": ts("2024-03-20"), "channel": "visit",
         "outcome": "interested"},
    ]))
    write_table(raw_dir, "complaints", pd.DataFrame([
        {"complaint_id": 1, "client_id": "C1", "branch_id": "B1", "filed_on": ts("2024-02-15"), "category": "fees",
         "resolved_on": ts("2024-04-10")},
        {"complaint_id": 2, "client_id": "C2", "branch_id": "B1", "filed_on": ts("2024-03-01"), "category": "service",
         "resolved_on": ts("2024-03-05")},
    ]))
    write_table(raw_dir, "satisfaction_surveys", pd.DataFrame([
        {"survey_id": 1, "client_id": "C1", "surveyed_on": ts("2024-01-31"), "score": 4},
        {"survey_id": 2, "client_id": "C3", "surveyed_on": ts("2024-02-28"), "score": 3},
        {"survey_id": 3, "client_id": "C1", "surveyed_on": ts("2024-03-29"), "score": 2},
    ]))
    write_table(raw_dir, "research_reports", pd.DataFrame([
        {"report_id": "R1", "published_on": ts("2024-01-12"), "kind": "company", "industry": "electronics",
         "security_id": "300001"},
        {"report_id": "R2", "published_on": ts("2024-03-01"), "kind": "market", "industry": None, "security_id": None},
        {"report_id": "R3", "published_on": ts("2024-03-22"), "kind": "industry", "industry": "steel",
         "security_id": None},
    ]))
    write_table(raw_dir, "report_reads", pd.DataFrame([
        {"client_id": "C1", "report_id": "R1", "read_on": ts("2024-01-14"), "rating": 5},
        {"client_id": "C1", "report_id": "R2", "read_on": ts("2024-03-02"), "rating": None},
        {"client_id": "C2", "report_id": "R3", "read_on": ts("2024-03-23"), "rating": 2},
    ]).astype({"rating": "Int64"}))
    write_table(raw_dir, "ipo_subscriptions", pd.DataFrame([
        {"subscription_id": 1, "client_id": "C1", "security_id": "300001", "subscribed_on": ts("2024-01-08"),
         "applied_quantity": 1000, "allotted_quantity": 0, "ipo_price": 15.0, "paid_amount": 0.0,
         "status": "not_allotted"},
    ]))
    return raw_dir


def _c3_cash() -> float:
    sale = trade_frame().query("trade_id == 2").iloc[0]
    return round(sale.amount - sale.commission - sale.stamp_duty, 2)
