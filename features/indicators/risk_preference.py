"""Risk preference (风险偏好评估): the risk a client really takes, read from his account and trading history.

What a risk officer looks at besides the holdings of one month-end (client category) and the board mix of buys
(account information): how fully and how steadily the account is invested, how much of the cash at hand each buy
commits, how much the account's value swings and falls, how volatile the stocks bought were, and how many stocks
the account usually holds. Windows are the last 12 month-ends or 365 days.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from features.indicators.context import Context, days
from features.indicators.definitions import Family, indicator

F, E = Family.RISK_PREFERENCE, "client"
FULL_INVESTMENT_RATIO = 0.9  # market value / total assets from which a month-end counts as fully invested
MIN_ASSETS_YUAN = 1_000.0  # month-ends with less in the account say nothing about how it is invested
MIN_MONTHS = 3  # month-end returns needed for a volatility or a drawdown

INDICATORS = [
    indicator("securitisation_ratio_avg_12m", F, E, "Average of market value / total assets over the last 12 "
              f"month-ends with at least {MIN_ASSETS_YUAN:,.0f} yuan in the account.", "12 month-ends",
              "ratio 0-1", "平均仓位（12个月）", missing="0 without such month-ends"),
    indicator("full_investment_share_12m", F, E, "Share of those month-ends with market value at least "
              f"{FULL_INVESTMENT_RATIO:.0%} of total assets (fully invested, 满仓).", "12 month-ends", "ratio 0-1",
              "满仓月份占比", missing="0 without such month-ends"),
    indicator("buy_cash_commitment_avg_365d", F, E, "Average over buys of the amount bought / the cash in the "
              "account just before the buy (previous month-end cash plus the month's transfers, IPO payments and "
              "trades before it): how much of the money at hand each buy commits.", "365d", "ratio 0-1",
              "单笔买入资金占比", missing="0 without buys"),
    indicator("account_volatility_12m", F, E, "Standard deviation of the account's month-to-month return net of "
              "transfers ((assets - previous assets - net transfers in) / (previous assets + half the net "
              "transfers in)) over the last 12 month-ends.", "12 month-ends", "fraction per month",
              "账户收益波动率", missing=f"0 with fewer than {MIN_MONTHS} monthly returns"),
    indicator("max_drawdown_12m", F, E, "Largest fall of the account's value net of transfers from a previous "
              "high, over the last 12 month-ends.", "12 month-ends", "ratio 0-1", "最大回撤（12个月）",
              missing=f"0 with fewer than {MIN_MONTHS} monthly returns"),
    indicator("bought_volatility_avg_365d", F, E, "Amount-weighted average, over buys, of the bought stock's "
              "daily-return standard deviation in the calendar month before the buy.", "365d", "fraction per day",
              "买入股票波动率", missing="0 without buys"),
    indicator("positions_count_avg_12m", F, E, "Average number of stocks held at the last 12 month-ends.",
              "12 month-ends", "count", "平均持股数（12个月）", missing="0 without snapshots"),
    indicator("holdings_concentration_avg_12m", F, E, "Average Herfindahl index of position weights at the last "
              "12 month-ends with holdings (1 = one stock).", "12 month-ends", "ratio 0-1", "平均持仓集中度（12个月）",
              missing="0 when nothing was held"),
]


def _previous_month_end(date: ir.DateValue) -> ir.DateValue:
    return date.truncate("M") - days(1)


def cash_before_buys(ctx: Context) -> ir.Table:
    """Every buy with the cash the account held just before it: the previous month-end's cash plus the month's
    transfers, IPO payments and trades before it (on the buy's day, transfers and IPO payments come first)."""
    t, c, s = ctx.trades, ctx.cash_transfers, ctx.account_snapshots
    trade_cash = (t.side == "buy").ifelse(-(t.amount + t.commission), t.amount - t.commission - t.stamp_duty)
    moves = t.select("client_id", day=t.trade_date, order=ibis.literal(1), seq=t.trade_id, cash=trade_cash,
                     bought=(t.side == "buy").ifelse(t.amount, 0.0))
    moves = moves.union(c.select("client_id", day=c.transfer_date, order=ibis.literal(0), seq=c.transfer_id,
                                 cash=(c.direction == "in").ifelse(c.amount, -c.amount), bought=ibis.literal(0.0)))
    ipo = ctx.ipo_subscriptions.filter(ctx.ipo_subscriptions.paid_amount > 0).join(
        ctx.securities.select("security_id", "listed_on"), "security_id")
    moves = moves.union(ipo.select("client_id", day=ipo.listed_on, order=ibis.literal(0), seq=ipo.subscription_id,
                                   cash=-ipo.paid_amount, bought=ibis.literal(0.0)))
    moves = moves.mutate(month_start=_previous_month_end(moves.day))
    month = ibis.cumulative_window(group_by=[moves.client_id, moves.month_start],
                                   order_by=[moves.day, moves.order, moves.seq])
    moves = moves.mutate(running=moves.cash.sum().over(month))
    buys = moves.filter(moves.bought > 0)
    start = s.select("client_id", month_start=s.snapshot_date, start_cash=s.cash)
    buys = buys.left_join(start, ["client_id", "month_start"])
    # The running sum includes the buy itself: add back what it cost.
    before = buys.start_cash.fill_null(0.0) + buys.running - buys.cash
    return buys.select(client_id=buys.client_id, trade_date=buys.day, amount=buys.bought, cash_before=before)


def monthly_returns(ctx: Context) -> ir.Table:
    """Per client and month-end: the account's return over the month net of transfers (modified Dietz)."""
    s, c = ctx.account_snapshots, ctx.cash_transfers
    flows = c.mutate(month_end=(c.transfer_date.truncate("M") + ibis.interval(months=1)) - days(1))
    flows = flows.group_by(["client_id", "month_end"]).aggregate(
        net_in=((flows.direction == "in").ifelse(flows.amount, -flows.amount)).sum())
    by_client = ibis.window(group_by=s.client_id, order_by=s.snapshot_date)
    s = s.mutate(previous=s.total_assets.lag().over(by_client))
    j = s.left_join(flows, [s.client_id == flows.client_id, s.snapshot_date == flows.month_end])
    net_in = j.net_in.fill_null(0.0)
    base = j.previous + 0.5 * net_in
    return j.filter(j.previous.notnull() & (base >= MIN_ASSETS_YUAN)).select(
        client_id=j.client_id, snapshot_date=j.snapshot_date,
        monthly_return=(j.total_assets - j.previous - net_in) / base)


def snapshot_holdings(ctx: Context) -> ir.Table:
    """Per client and month-end with holdings: the number of stocks and the Herfindahl index of their weights."""
    p = ctx.positions
    total = p.market_value.sum().over(group_by=[p.client_id, p.snapshot_date])
    p = p.mutate(weight=ibis.ifelse(total > 0, p.market_value / total, 0.0))
    return p.group_by(["client_id", "snapshot_date"]).aggregate(stocks=p.count(), hhi=(p.weight * p.weight).sum())


def monthly_volatility(ctx: Context) -> ir.Table:
    """Per stock and month-end: the standard deviation of its daily returns over that calendar month."""
    p = ctx.daily_prices.filter(ctx.daily_prices.prev_close > 0)
    p = p.mutate(month_end=(p.trade_date.truncate("M") + ibis.interval(months=1)) - days(1))
    return p.group_by(["security_id", "month_end"]).aggregate(volatility=(p.close / p.prev_close - 1).std())


def _twelve_month_ends(ctx: Context, table: ir.Table) -> ir.Table:
    """Rows of a per-month-end table paired with each as-of date whose last 12 month-ends include them."""
    a = ctx.as_of
    return table.join(a, [table.snapshot_date <= a.snap_date, table.snapshot_date > a.start_12m])


def compute(ctx: Context) -> ir.Table:
    pop = ctx.population()
    s = ctx.account_snapshots
    s = s.filter(s.total_assets >= MIN_ASSETS_YUAN)
    sj = _twelve_month_ends(ctx, s.select("client_id", "snapshot_date",
                                          ratio=s.market_value / s.total_assets))
    invested = sj.group_by(["client_id", "as_of"]).aggregate(
        securitisation_ratio_avg_12m=sj.ratio.mean(),
        full_investment_share_12m=(sj.ratio >= FULL_INVESTMENT_RATIO).cast("float64").mean())

    rj = _twelve_month_ends(ctx, monthly_returns(ctx))
    growth = ibis.cumulative_window(group_by=[rj.client_id, rj.as_of], order_by=rj.snapshot_date)
    rj = rj.mutate(log_value=(1 + rj.monthly_return).clip(lower=0.01).ln().sum().over(growth))
    # The value before the first return is the starting high (log value 0).
    rj = rj.mutate(high=ibis.greatest(rj.log_value.max().over(growth), 0.0))
    swings = rj.group_by(["client_id", "as_of"]).aggregate(
        months=rj.count(), volatility=rj.monthly_return.std(how="pop"),
        drawdown=(1 - (rj.log_value - rj.high).exp()).max())

    hj = _twelve_month_ends(ctx, snapshot_holdings(ctx))
    holdings = hj.group_by(["client_id", "as_of"]).aggregate(held_hhi=hj.hhi.mean(), held_stocks=hj.stocks.sum())
    snapshots = _twelve_month_ends(ctx, ctx.account_snapshots.select("client_id", "snapshot_date"))
    snapshots = snapshots.group_by(["client_id", "as_of"]).aggregate(snapshots=snapshots.count())

    buys = cash_before_buys(ctx)
    vol = monthly_volatility(ctx)
    tr = ctx.trades.filter(ctx.trades.side == "buy")
    bought = tr.mutate(month_before=_previous_month_end(tr.trade_date))
    bought = bought.left_join(vol, [bought.security_id == vol.security_id, bought.month_before == vol.month_end])
    bj = ctx.windowed(bought.select("client_id", "trade_date", "amount", volatility=bought.volatility), "trade_date",
                      365)
    bought_vol = bj.group_by(["client_id", "as_of"]).aggregate(
        weighted=(bj.amount * bj.volatility).sum(where=bj.volatility.notnull()),
        weights=bj.amount.sum(where=bj.volatility.notnull()))
    cj = ctx.windowed(buys.select("client_id", "trade_date",
                                  commitment=ibis.ifelse(buys.cash_before > 0,
                                                         (buys.amount / buys.cash_before).clip(upper=1.0), 1.0)),
                      "trade_date", 365)
    commitment = cj.group_by(["client_id", "as_of"]).aggregate(commitment=cj.commitment.mean())

    out = (
        pop.left_join(invested, ["client_id", "as_of"])
        .left_join(swings, ["client_id", "as_of"])
        .left_join(holdings, ["client_id", "as_of"])
        .left_join(snapshots, ["client_id", "as_of"])
        .left_join(bought_vol, ["client_id", "as_of"])
        .left_join(commitment, ["client_id", "as_of"])
    )
    enough = out.months.fill_null(0) >= MIN_MONTHS
    weights = out.weights.fill_null(0.0)
    return out.select(
        "client_id", "as_of",
        securitisation_ratio_avg_12m=out.securitisation_ratio_avg_12m.fill_null(0.0).cast("float64"),
        full_investment_share_12m=out.full_investment_share_12m.fill_null(0.0).cast("float64"),
        buy_cash_commitment_avg_365d=out.commitment.fill_null(0.0).cast("float64"),
        account_volatility_12m=ibis.ifelse(enough, out.volatility.fill_null(0.0), 0.0).cast("float64"),
        max_drawdown_12m=ibis.ifelse(enough, out.drawdown.fill_null(0.0), 0.0).cast("float64"),
        bought_volatility_avg_365d=ibis.ifelse(weights > 0, out.weighted.fill_null(0.0) / weights, 0.0)
        .cast("float64"),
        positions_count_avg_12m=ibis.ifelse(out.snapshots.fill_null(0) > 0,
                                            out.held_stocks.fill_null(0).cast("float64") / out.snapshots, 0.0)
        .cast("float64"),
        holdings_concentration_avg_12m=out.held_hhi.fill_null(0.0).cast("float64"),
    )
