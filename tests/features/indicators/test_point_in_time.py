"""Point in time: changing or adding raw rows dated after an as-of date never changes that date's indicators."""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.indicators.compute import compute_frames
from features.indicators.context import duckdb_context
from features.raw.store import read_table, write_table
from tests.features.indicators.tiny_world import DAYS, write_tiny_world

AS_OF = dt.date(2024, 2, 29)
LATER_DAYS = [d for d in DAYS if d > AS_OF]
CLIENTS = ["C1", "C2", "C3"]
SECURITIES = ["600001", "300001", "600002"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, pd.DataFrame]]:
    raw = write_tiny_world(tmp_path_factory.mktemp("pit") / "raw")
    con, ctx = duckdb_context(raw, [AS_OF])
    return raw, compute_frames(con, ctx)


later_day = st.sampled_from(LATER_DAYS)
money = st.floats(min_value=1.0, max_value=1e6, allow_nan=False).map(lambda x: round(x, 2))


@st.composite
def change(draw: st.DrawFn) -> tuple[str, dict]:
    """One raw row dated after the as-of date, added or altered."""
    kind = draw(st.sampled_from([
        "trade", "transfer", "snapshot", "position", "contact", "complaint", "survey", "read", "ipo", "price",
        "index", "new_client", "alter_later_trade", "resolve_complaint_later", "close_later", "rate_change",
    ]))
    day = pd.Timestamp(draw(later_day))
    client = draw(st.sampled_from(CLIENTS[:2]))
    security = draw(st.sampled_from(SECURITIES))
    return kind, {"day": day, "client": client, "security": security, "money": draw(money),
                  "quantity": draw(st.integers(1, 50)) * 100, "score": draw(st.integers(1, 5)),
                  "side": draw(st.sampled_from(["buy", "sell"])), "in_out": draw(st.sampled_from(["in", "out"]))}


def _apply(raw: Path, kind: str, v: dict) -> None:
    def add(table: str, row: dict) -> None:
        frame = read_table(raw, table)
        key = frame.columns[0]
        if key.endswith("_id") and frame[key].dtype.kind == "i":
            row = {**row, key: int(frame[key].max()) + 1}
        # Optional columns the row leaves out stay empty.
        new = pd.DataFrame({c: pd.Series([row.get(c)], dtype=frame[c].dtype) for c in frame.columns})
        write_table(raw, table, pd.concat([frame, new], ignore_index=True))

    day, client = v["day"], v["client"]
    serial = len(read_table(raw, "research_reports")) + len(read_table(raw, "clients"))
    if kind == "trade":
        price = 10.0
        amount = v["quantity"] * price
        add("trades", {"trade_id": 1000, "client_id": client, "security_id": "600001", "trade_date": day,
                       "side": v["side"], "quantity": v["quantity"], "price": price, "amount": amount,
                       "commission": max(5.0, round(amount * 0.0003, 2)),
                       "stamp_duty": round(amount * 0.0005, 2) if v["side"] == "sell" else 0.0})
    elif kind == "transfer":
        add("cash_transfers", {"transfer_id": 1000, "client_id": client, "transfer_date": day,
                               "direction": v["in_out"], "amount": v["money"]})
    elif kind == "snapshot":
        frame = read_table(raw, "account_snapshots")
        later = frame["snapshot_date"] > pd.Timestamp(AS_OF)
        frame.loc[later, "cash"] = v["money"]
        frame.loc[later, "total_assets"] = frame.loc[later, "cash"] + frame.loc[later, "market_value"]
        write_table(raw, "account_snapshots", frame)
    elif kind == "position":
        frame = read_table(raw, "positions")
        later = frame["snapshot_date"] > pd.Timestamp(AS_OF)
        frame.loc[later, "first_bought_on"] = pd.Timestamp(AS_OF) + pd.Timedelta(days=1)
        frame.loc[later, "market_value"] = v["money"]
        write_table(raw, "positions", frame)
    elif kind == "contact":
        add("contacts", {"contact_id": 1000, "client_id": client, "broker_id": "K1", "contact_date": day,
                         "channel": "sms", "outcome": "reached"})
    elif kind == "complaint":
        add("complaints", {"complaint_id": 1000, "client_id": client, "branch_id": "B1", "filed_on": day,
                           "category": "system", "resolved_on": pd.NaT})
    elif kind == "survey":
        add("satisfaction_surveys", {"survey_id": 1000, "client_id": client, "surveyed_on": day,
                                     "score": v["score"]})
    elif kind == "read":
        report = f"R9{serial}"
        add("research_reports", {"report_id": report, "published_on": day, "kind": "company",
                                 "industry": "banks", "security_id": "600001"})
        add("report_reads", {"client_id": client, "report_id": report, "read_on": day, "rating": v["score"]})
    elif kind == "ipo":
        add("ipo_subscriptions", {"subscription_id": 1000, "client_id": client, "security_id": "300001",
                                  "subscribed_on": day, "applied_quantity": v["quantity"], "allotted_quantity": 0,
                                  "ipo_price": 15.0, "paid_amount": 0.0, "status": "not_allotted"})
    elif kind == "price":
        frame = read_table(raw, "daily_prices")
        later = (frame["trade_date"] >= day) & (frame["security_id"] == v["security"])
        frame.loc[later, "close"] = frame.loc[later, "close"] * 1.5
        write_table(raw, "daily_prices", frame)
    elif kind == "index":
        frame = read_table(raw, "market_index")
        later = frame["trade_date"] >= day
        frame.loc[later, "close"] = frame.loc[later, "close"] * 0.8
        frame.loc[later, "amount"] = v["money"]
        write_table(raw, "market_index", frame)
    elif kind == "new_client":
        add("clients", {"client_id": f"C9{serial}", "client_type": "individual", "branch_id": "B1", "broker_id": "K2",
                        "opened_on": day, "closed_on": pd.NaT, "commission_rate": 0.0003, "risk_level": "C1",
                        "risk_assessed_on": day, "birth_year": 1980})
        add("cash_transfers", {"transfer_id": 1001, "client_id": f"C9{serial}", "transfer_date": day, "direction": "in",
                               "amount": v["money"]})
    elif kind == "alter_later_trade":
        frame = read_table(raw, "trades")
        later = frame["trade_date"] > pd.Timestamp(AS_OF)
        frame.loc[later, "commission"] = frame.loc[later, "commission"] + 100
        write_table(raw, "trades", frame)
    elif kind == "resolve_complaint_later":
        frame = read_table(raw, "complaints")
        frame.loc[frame["filed_on"] <= pd.Timestamp(AS_OF), "resolved_on"] = day
        write_table(raw, "complaints", frame)
    elif kind == "close_later":
        frame = read_table(raw, "clients")
        frame.loc[frame["client_id"] == client, "closed_on"] = day
        write_table(raw, "clients", frame)
    elif kind == "rate_change":
        # A commission review after the as-of date: the clients table then holds the new rate.
        clients = read_table(raw, "clients")
        mine = clients["client_id"] == client
        old = float(clients.loc[mine, "commission_rate"].iloc[0])
        new = round(max(old * 0.6, 0.0001), 6)
        row = pd.DataFrame({"change_id": [1], "client_id": [client], "effective_on": [day], "old_rate": [old],
                            "new_rate": [new], "reason": ["retention_review"]})
        if (raw / "commission_rate_changes.parquet").exists():
            add("commission_rate_changes", row.iloc[0].to_dict())
        else:
            write_table(raw, "commission_rate_changes", row)
        clients.loc[mine, "commission_rate"] = new
        write_table(raw, "clients", clients)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.lists(change(), min_size=1, max_size=3))
def test_rows_after_the_as_of_date_never_change_its_indicators(world, changes) -> None:
    raw, expected = world
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "raw"
        shutil.copytree(raw, copy)
        for kind, values in changes:
            _apply(copy, kind, values)
        con, ctx = duckdb_context(copy, [AS_OF])
        actual = compute_frames(con, ctx)
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(actual[name], frame, obj=f"{name} after {[k for k, _ in changes]}")


def test_a_change_before_the_as_of_date_does_change_them(world, tmp_path: Path) -> None:
    """The guard against a test that cannot fail: an earlier row must show up."""
    raw, expected = world
    copy = tmp_path / "raw"
    shutil.copytree(raw, copy)
    _apply(copy, "survey", {"day": pd.Timestamp(AS_OF), "client": "C2", "score": 5})
    con, ctx = duckdb_context(copy, [AS_OF])
    actual = compute_frames(con, ctx)["client_feedback"]
    assert actual.loc[actual.client_id == "C2", "satisfaction_latest"].item() == 5.0
    assert expected["client_feedback"].loc[expected["client_feedback"].client_id == "C2",
                                           "satisfaction_latest"].item() == 3.0
