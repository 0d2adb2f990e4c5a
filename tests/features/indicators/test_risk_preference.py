"""The risk preference indicators of the tiny hand-made brokerage, worked out from its story."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from features.indicators.compute import compute_frames
from features.indicators.context import duckdb_context
from tests.features.indicators.tiny_world import DAYS, TRANSFERS, _ledgers, close, trade_frame, write_tiny_world

AS_OF = dt.date(2024, 3, 31)
MONTH_ENDS = [dt.date(2024, 1, 31), dt.date(2024, 2, 29), dt.date(2024, 3, 31)]  # after the opening one


@pytest.fixture(scope="module")
def risk(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    raw = write_tiny_world(tmp_path_factory.mktemp("tiny_risk") / "raw")
    con, ctx = duckdb_context(raw, [AS_OF])
    return compute_frames(con, ctx)["risk_preference"].set_index("client_id")


def _snapshots(client: str) -> pd.DataFrame:
    snaps, _ = _ledgers()
    return snaps[snaps.client_id == client].set_index("snapshot_date").sort_index()


def _cash_before_each_buy(client: str) -> list[tuple[float, float]]:
    """(amount, cash just before) for each buy, replaying the transfers and trades in date order."""
    cash = 50_000.0 if client == "C1" else 0.0
    events = [(d, 0, (direction, amount)) for _, c, d, direction, amount in TRANSFERS if c == client]
    events += [(t.trade_date.date(), 1, t) for t in trade_frame().itertuples() if t.client_id == client]
    out = []
    for _, kind, item in sorted(events, key=lambda e: (e[0], e[1])):
        if kind == 0:
            direction, amount = item
            cash += amount if direction == "in" else -amount
        elif item.side == "buy":
            out.append((item.amount, cash))
            cash -= item.amount + item.commission
        else:
            cash += item.amount - item.commission - item.stamp_duty
    return out


def test_average_securitisation_and_full_investment_over_the_month_ends(risk: pd.DataFrame) -> None:
    snaps = _snapshots("C1").loc[[pd.Timestamp(d) for d in MONTH_ENDS]]
    ratios = snaps.market_value / snaps.total_assets
    assert risk.loc["C1", "securitisation_ratio_avg_12m"] == pytest.approx(ratios.mean())
    assert risk.loc["C1", "full_investment_share_12m"] == pytest.approx((ratios >= 0.9).mean())


def test_each_buy_is_measured_against_the_cash_at_hand_just_before_it(risk: pd.DataFrame) -> None:
    c1 = _cash_before_each_buy("C1")
    assert len(c1) == 4
    assert risk.loc["C1", "buy_cash_commitment_avg_365d"] == pytest.approx(np.mean([a / c for a, c in c1]))
    # C2 opened in February with 5,000 yuan and bought 1,000 yuan of S1: a fifth of its cash.
    assert risk.loc["C2", "buy_cash_commitment_avg_365d"] == pytest.approx(1_000 / 5_000)
    assert "C3" not in risk.index  # closed on 03-20


def test_account_swings_are_month_to_month_returns_net_of_transfers(risk: pd.DataFrame) -> None:
    snaps = _snapshots("C1")
    net_in = {d: 0.0 for d in snaps.index}
    for _, client, day, direction, amount in TRANSFERS:
        if client == "C1":
            month_end = pd.Timestamp(day) + pd.offsets.MonthEnd(0)
            net_in[month_end] += amount if direction == "in" else -amount
    assets = snaps.total_assets
    returns = [(assets.iloc[k] - assets.iloc[k - 1] - net_in[assets.index[k]])
               / (assets.iloc[k - 1] + 0.5 * net_in[assets.index[k]]) for k in range(1, len(assets))]
    assert len(returns) == 3
    assert risk.loc["C1", "account_volatility_12m"] == pytest.approx(np.std(returns))
    value = np.cumprod(1 + np.array(returns))
    high = np.maximum.accumulate(np.maximum(value, 1.0))
    assert risk.loc["C1", "max_drawdown_12m"] == pytest.approx(max(0.0, float(np.max(1 - value / high))))
    # C2 has one month-end return: too few for either figure.
    assert risk.loc["C2", "account_volatility_12m"] == 0.0 and risk.loc["C2", "max_drawdown_12m"] == 0.0


def test_bought_volatility_is_of_the_month_before_each_buy(risk: pd.DataFrame) -> None:
    def month_volatility(security: str, year: int, month: int) -> float:
        days = [d for d in DAYS if (d.year, d.month) == (year, month)]
        listed = [d for d in days if security != "300001" or d >= dt.date(2024, 1, 15)]
        previous = {d: (15.0 if security == "300001" and d == dt.date(2024, 1, 15)
                        else close(security, DAYS[DAYS.index(d) - 1])) for d in listed}
        return float(np.std([close(security, d) / previous[d] - 1 for d in listed], ddof=1))

    # C1's buys with a month of prices before them: S2 on 02-01 (January) and S3 on 03-25 (February); S3 on 01-03
    # has one December price and S2 on 01-16 none, so they carry no volatility.
    trades = trade_frame().set_index("trade_id")
    weights = {5: month_volatility("300001", 2024, 1), 8: month_volatility("600002", 2024, 2)}
    amounts = {k: trades.loc[k, "amount"] for k in weights}
    expected = sum(amounts[k] * weights[k] for k in weights) / sum(amounts.values())
    assert risk.loc["C1", "bought_volatility_avg_365d"] == pytest.approx(expected)


def test_usual_number_of_stocks_and_concentration(risk: pd.DataFrame) -> None:
    _, positions = _ledgers()
    held = positions[(positions.client_id == "C1")
                     & positions.snapshot_date.isin([pd.Timestamp(d) for d in MONTH_ENDS])]
    counts = held.groupby("snapshot_date").size().reindex([pd.Timestamp(d) for d in MONTH_ENDS], fill_value=0)
    assert risk.loc["C1", "positions_count_avg_12m"] == pytest.approx(counts.mean())
    weights = held.market_value / held.groupby("snapshot_date").market_value.transform("sum")
    hhi = (weights ** 2).groupby(held.snapshot_date).sum()
    assert risk.loc["C1", "holdings_concentration_avg_12m"] == pytest.approx(hhi.mean())
