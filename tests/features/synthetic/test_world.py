"""The generated world obeys the trading rules of the A-share market and is reproducible byte for byte."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.raw.importer import load_directory
from features.raw.store import read_table
from features.synthetic.ground_truth import read_truth_table
from features.synthetic.world import WorldConfig, generate_world


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    config = WorldConfig(clients=300, months=3, seed=42)
    for name in ("a", "b"):
        generate_world(config, tmp_path / name / "raw", tmp_path / name / "truth")
    generate_world(config.model_copy(update={"seed": 43}), tmp_path / "c" / "raw", tmp_path / "c" / "truth")
    a, b, c = (_digests(tmp_path / n / "raw") for n in "abc")
    assert a == b
    assert _digests(tmp_path / "a" / "truth") == _digests(tmp_path / "b" / "truth")
    assert set(a) == set(c)
    different = [name for name in a if a[name] != c[name]]
    assert "trades.parquet" in different and "clients.parquet" in different


@pytest.fixture(scope="module")
def raw(small_world: Path) -> dict[str, pd.DataFrame]:
    return {name: read_table(small_world / "raw", name) for name in (
        "clients", "trades", "cash_transfers", "account_snapshots", "positions", "daily_prices", "market_index",
        "ipo_subscriptions", "securities", "commission_rate_changes")}


def _rate_in_force(trades: pd.DataFrame, raw: dict[str, pd.DataFrame]) -> pd.Series:
    """Each trade's commission rate: the client's current rate, or before a later change that change's old rate."""
    rate = trades["client_id"].map(raw["clients"].set_index("client_id")["commission_rate"])
    changes = raw["commission_rate_changes"].sort_values(["effective_on", "change_id"], ascending=False)
    for change in changes.itertuples():
        before = (trades["client_id"] == change.client_id) & (trades["trade_date"] < change.effective_on)
        rate = rate.where(~before, change.old_rate)
    return rate


def test_generated_tables_pass_the_import_checks(small_world: Path) -> None:
    _, _, findings = load_directory(small_world / "raw")
    assert findings == []


def test_trades_follow_fees_lots_and_calendar(raw: dict[str, pd.DataFrame]) -> None:
    trades = raw["trades"].assign(commission_rate=lambda t: _rate_in_force(t, raw))
    assert len(raw["commission_rate_changes"]) > 0, "the past retention campaigns reviewed no commission rate"
    assert (trades["quantity"] % 100 == 0).all()
    assert np.allclose(trades["amount"], np.round(trades["quantity"] * trades["price"], 2))
    expected = np.round(np.maximum(5.0, trades["amount"] * trades["commission_rate"]), 2)
    assert np.allclose(trades["commission"], expected)
    assert (trades["commission"] >= 5).all()
    sells = trades["side"] == "sell"
    assert np.allclose(trades.loc[sells, "stamp_duty"], np.round(trades.loc[sells, "amount"] * 0.0005, 2))
    assert (trades.loc[~sells, "stamp_duty"] == 0).all()
    # Only on trading days, in listed and non-suspended securities, at that day's close.
    priced = trades.merge(raw["daily_prices"], on=["security_id", "trade_date"], how="left")
    assert priced["close"].notna().all(), "a trade on a day the security had no price (not listed or no trading day)"
    assert not priced["is_suspended"].any()
    assert np.allclose(priced["price_x"] if "price_x" in priced else priced["price"], priced["close"])
    assert trades["trade_date"].isin(raw["market_index"]["trade_date"]).all()


def _holdings_ledger(raw: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Daily net share changes per client and security, from the opening positions, trades and IPO allotments."""
    opening_date = raw["account_snapshots"]["snapshot_date"].min()
    opening = raw["positions"][raw["positions"]["snapshot_date"] == opening_date]
    moves = [
        opening.assign(date=opening_date, bought=0, sold=0, credited=opening["quantity"])[
            ["client_id", "security_id", "date", "bought", "sold", "credited"]],
        raw["trades"].assign(
            date=raw["trades"]["trade_date"],
            bought=np.where(raw["trades"]["side"] == "buy", raw["trades"]["quantity"], 0),
            sold=np.where(raw["trades"]["side"] == "sell", raw["trades"]["quantity"], 0), credited=0,
        )[["client_id", "security_id", "date", "bought", "sold", "credited"]],
    ]
    allotted = raw["ipo_subscriptions"][raw["ipo_subscriptions"]["status"] == "allotted"]
    if len(allotted):
        listed = allotted.merge(raw["securities"][["security_id", "listed_on"]], on="security_id")
        moves.append(listed.assign(date=listed["listed_on"], bought=0, sold=0,
                                   credited=listed["allotted_quantity"])[
            ["client_id", "security_id", "date", "bought", "sold", "credited"]])
    ledger = pd.concat(moves).groupby(["client_id", "security_id", "date"], as_index=False).sum()
    ledger = ledger.sort_values(["client_id", "security_id", "date"], ignore_index=True)
    ledger["held_end"] = (ledger["bought"] + ledger["credited"] - ledger["sold"]).groupby(
        [ledger["client_id"], ledger["security_id"]]).cumsum()
    ledger["held_before"] = ledger["held_end"] - ledger["bought"] - ledger["credited"] + ledger["sold"]
    return ledger


def test_no_short_selling_and_t_plus_one(raw: dict[str, pd.DataFrame]) -> None:
    ledger = _holdings_ledger(raw)
    assert (ledger["held_end"] >= 0).all(), "a position went negative (short selling)"
    # Shares bought today cannot be sold today: sells are covered by what was held before today plus IPO credits.
    assert (ledger["sold"] <= ledger["held_before"] + ledger["credited"]).all()


def test_month_end_positions_match_the_trades(raw: dict[str, pd.DataFrame]) -> None:
    ledger = _holdings_ledger(raw)
    for date, positions in raw["positions"].groupby("snapshot_date"):
        upto = ledger[ledger["date"] <= date].groupby(["client_id", "security_id"])["held_end"].last()
        upto = upto[upto > 0].sort_index()
        snap = positions.set_index(["client_id", "security_id"])["quantity"].sort_index()
        pd.testing.assert_series_equal(upto, snap, check_names=False, check_dtype=False)


def test_cash_is_never_negative_and_reconciles(raw: dict[str, pd.DataFrame]) -> None:
    snaps = raw["account_snapshots"]
    assert (snaps[["cash", "market_value", "total_assets"]] >= 0).all().all()
    assert np.allclose(snaps["total_assets"], snaps["cash"] + snaps["market_value"], atol=0.011)
    t = raw["trades"]
    flows = pd.concat([
        raw["cash_transfers"].assign(date=raw["cash_transfers"]["transfer_date"],
                                     cash=np.where(raw["cash_transfers"]["direction"] == "in", 1, -1)
                                     * raw["cash_transfers"]["amount"]),
        t.assign(date=t["trade_date"], cash=np.where(t["side"] == "buy", -(t["amount"] + t["commission"]),
                                                      t["amount"] - t["commission"] - t["stamp_duty"])),
    ])
    paid = raw["ipo_subscriptions"].merge(raw["securities"][["security_id", "listed_on"]], on="security_id")
    flows = pd.concat([flows, paid.assign(date=paid["listed_on"], cash=-paid["paid_amount"])])
    daily = flows.groupby(["client_id", "date"])["cash"].sum()
    opening_date = snaps["snapshot_date"].min()
    opening = snaps[snaps["snapshot_date"] == opening_date].set_index("client_id")["cash"]
    running = daily.groupby(level=0).cumsum().add(opening.reindex(daily.index.get_level_values(0)).fillna(0).values)
    assert (running >= -0.01).all(), "a client spent cash they did not have"
    last_date = snaps["snapshot_date"].max()
    final = running.groupby(level=0).last()
    final = final.reindex(opening.index.union(final.index)).fillna(opening)
    expected = snaps[snaps["snapshot_date"] == last_date].set_index("client_id")["cash"]
    assert np.allclose(final.reindex(expected.index).fillna(opening.reindex(expected.index)), expected, atol=0.05)


def test_churned_clients_stop_trading_and_their_assets_leave(small_world: Path, raw) -> None:
    events = read_truth_table(small_world / "ground_truth", "churn_events")
    assert len(events) > 0
    trades = raw["trades"].merge(events, on="client_id")
    after_start = trades[trades["trade_date"] >= trades["churn_started_on"]]
    assert (after_start["side"] == "sell").all(), "a churning client bought"
    gone = trades[trades["assets_gone_on"].notna() & (trades["trade_date"] > trades["assets_gone_on"])]
    assert gone.empty, "a client traded after moving all assets out"
    snaps = raw["account_snapshots"].merge(events[events["assets_gone_on"].notna()], on="client_id")
    after = snaps[snaps["snapshot_date"] >= snaps["assets_gone_on"]]
    assert (after["total_assets"] < 0.01).all()
    closed = raw["clients"].dropna(subset=["closed_on"])
    late = raw["account_snapshots"].merge(closed, on="client_id")
    assert (late["snapshot_date"] < late["closed_on"]).all(), "a closed account kept a snapshot"


def test_no_activity_before_an_account_opens(raw) -> None:
    opened = raw["clients"].set_index("client_id")["opened_on"]
    for name, column in (("trades", "trade_date"), ("cash_transfers", "transfer_date")):
        frame = raw[name]
        assert (frame[column].to_numpy() >= opened.reindex(frame["client_id"]).to_numpy()).all(), name
