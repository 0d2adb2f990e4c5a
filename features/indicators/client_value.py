"""Family 3, client value (客户价值): commission, activity, stability and loyalty, the client's own return."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from features.indicators.context import Context, days
from features.indicators.definitions import Family, indicator

F, E = Family.CLIENT_VALUE, "client"
# The commission rate competitors quote to active clients (0.02%): what a client paying more could get elsewhere.
MARKET_COMMISSION_RATE = 0.0002

INDICATORS = [
    *[indicator(f"commission_{w}d", F, E, f"Commission paid over the last {w} days.", f"{w}d", "yuan",
                f"佣金贡献（{w}天）", missing="0 without trades") for w in (30, 90, 365)],
    *[indicator(f"trade_count_{w}d", F, E, f"Number of trades over the last {w} days.", f"{w}d", "count",
                f"交易笔数（{w}天）", "int64", missing="0 without trades") for w in (30, 90, 365)],
    *[indicator(f"trade_amount_{w}d", F, E, f"Value traded (buys and sells) over the last {w} days.", f"{w}d",
                "yuan", f"交易金额（{w}天）", missing="0 without trades") for w in (90, 365)],
    indicator("active_month_share_365d", F, E, "Share of the last 12 calendar months (or of the months since "
              "opening, if fewer) with at least one trade: continuity of activity.", "365d", "ratio 0-1",
              "交易连续性", missing="0 without trades"),
    indicator("tenure_days", F, E, "Days since the account was opened.", "as-of", "days", "开户时长", "int64"),
    indicator("return_3m", F, E, "The client's own return over the last 3 month-ends, net of transfers "
              "(simple Dietz: (end - start - net inflow) / (start + net inflow / 2)).", "3 months", "fraction",
              "客户收益率（3个月）", missing="0 when the window has no starting assets"),
    indicator("return_6m", F, E, "The client's own return over the last 6 month-ends (or since the first "
              "snapshot), net of transfers (simple Dietz).", "6 months", "fraction", "客户收益率（6个月）",
              missing="0 when the window has no starting assets"),
    indicator("return_12m", F, E, "The client's own return over the last 12 month-ends (or since the first "
              "snapshot), net of transfers (simple Dietz).", "12 months", "fraction", "客户收益率（12个月）",
              missing="0 when the window has no starting assets"),
    indicator("market_return_6m", F, E, "The market index's return over the same 6 month-ends as return_6m.",
              "6 months", "fraction", "市场收益率（6个月）", missing="0 without an index close in the window"),
    indicator("excess_return_6m", F, E, "The client's return over 6 months less what the market gave the share of "
              "the account held in stocks: return_6m - securitisation ratio × market_return_6m.", "6 months",
              "fraction", "相对市场超额收益（6个月）", missing="0 when the window has no starting assets"),
    indicator("commission_overpaid_90d", F, E, "Commission paid over 90 days above what the market's rate "
              f"({MARKET_COMMISSION_RATE:.2%}) would have cost: (commission rate - market rate) × value traded, "
              "0 at or below the market's rate.", "90d", "yuan", "高于市场费率的佣金（90天）",
              missing="0 without trades"),
    indicator("asset_growth_12m", F, E, "Change of total assets over 12 month-ends, transfers included: "
              "end / start - 1.", "12 months", "fraction", "资产增长率", missing="0 without starting assets"),
]


def dietz(start: ir.FloatingValue, end: ir.FloatingValue, net_inflow: ir.FloatingValue) -> ir.FloatingValue:
    denominator = start + net_inflow / 2
    return ibis.ifelse(denominator > 1000, (end - start - net_inflow) / denominator, 0.0)


def net_inflows(ctx: Context) -> ir.Table:
    """Net inflow per client and as-of inside the 3- and 12-month return windows (after their first snapshot)."""
    assets = ctx.assets()
    tr = ctx.cash_transfers
    signed = tr.mutate(net_in=(tr.direction == "in").ifelse(tr.amount, -tr.amount))
    a = ctx.as_of
    j = signed.join(a, [signed.transfer_date <= a.snap_date, signed.transfer_date > a.start_12m])
    j = j.join(assets.select("client_id", "as_of", "first_3m", "first_6m", "first_12m"), ["client_id", "as_of"])
    return j.group_by(["client_id", "as_of"]).aggregate(
        net_in_12m=j.net_in.sum(where=j.transfer_date > j.first_12m),
        net_in_3m=j.net_in.sum(where=j.transfer_date > j.first_3m),
        net_in_6m=j.net_in.sum(where=j.transfer_date > j.first_6m),
    )


def market_return_6m(ctx: Context) -> ir.Table:
    """Per as-of date: the index's return from the last close on or before the 6-month window's start to the
    last close on or before the as-of snapshot."""
    mi, a = ctx.market_index, ctx.as_of
    j = mi.join(a, mi.trade_date <= a.snap_date)
    agg = j.group_by("as_of").aggregate(end_close=j.close.argmax(j.trade_date),
                                        start_close=j.close.argmax(j.trade_date, where=j.trade_date <= j.start_6m))
    return agg.select("as_of", market_return_6m=ibis.ifelse(agg.start_close > 0, agg.end_close / agg.start_close - 1,
                                                             0.0).fill_null(0.0))


def compute(ctx: Context) -> ir.Table:
    pop = ctx.population()
    tj = ctx.windowed(ctx.trades, "trade_date", 365)
    in_30, in_90 = tj.trade_date > tj.as_of - days(30), tj.trade_date > tj.as_of - days(90)
    trades = tj.group_by(["client_id", "as_of"]).aggregate(
        commission_30d=tj.commission.sum(where=in_30),
        commission_90d=tj.commission.sum(where=in_90),
        commission_365d=tj.commission.sum(),
        trade_count_30d=in_30.sum(),
        trade_count_90d=in_90.sum(),
        trade_count_365d=tj.count(),
        trade_amount_90d=tj.amount.sum(where=in_90),
        trade_amount_365d=tj.amount.sum(),
        active_months=tj.trade_date.truncate("M").nunique(),
    )
    assets = ctx.assets()
    flows = net_inflows(ctx)
    out = (
        pop.left_join(trades, ["client_id", "as_of"])
        .left_join(assets, ["client_id", "as_of"])
        .left_join(flows, ["client_id", "as_of"])
        .left_join(market_return_6m(ctx), "as_of")
    )
    tenure = out.as_of.delta(out.opened_on, unit="day")
    # Months the account could have traded in, within the last 12.
    months_open = ibis.least(12, (tenure / 30.44).ceil().cast("int64")).clip(lower=1)
    end = out.assets.fill_null(0.0)
    start_12m = out.assets_first_12m.fill_null(0.0)
    start_3m = out.assets_first_3m.fill_null(0.0)
    start_6m = out.assets_first_6m.fill_null(0.0)
    return_6m = dietz(start_6m, end, out.net_in_6m.fill_null(0.0))
    in_stocks = ibis.ifelse(end > 0, out.market_value.fill_null(0.0) / end, 0.0)
    market_6m = out.market_return_6m.fill_null(0.0)
    return out.select(
        "client_id", "as_of",
        commission_30d=out.commission_30d.fill_null(0.0),
        commission_90d=out.commission_90d.fill_null(0.0),
        commission_365d=out.commission_365d.fill_null(0.0),
        trade_count_30d=out.trade_count_30d.fill_null(0).cast("int64"),
        trade_count_90d=out.trade_count_90d.fill_null(0).cast("int64"),
        trade_count_365d=out.trade_count_365d.fill_null(0).cast("int64"),
        trade_amount_90d=out.trade_amount_90d.fill_null(0.0),
        trade_amount_365d=out.trade_amount_365d.fill_null(0.0),
        active_month_share_365d=ibis.least(1.0, out.active_months.fill_null(0) / months_open).cast("float64"),
        tenure_days=tenure.cast("int64"),
        return_3m=dietz(start_3m, end, out.net_in_3m.fill_null(0.0)).cast("float64"),
        return_6m=return_6m.cast("float64"),
        return_12m=dietz(start_12m, end, out.net_in_12m.fill_null(0.0)).cast("float64"),
        market_return_6m=market_6m.cast("float64"),
        excess_return_6m=ibis.ifelse(start_6m > 0, return_6m - in_stocks * market_6m, 0.0).cast("float64"),
        commission_overpaid_90d=(ibis.greatest(out.commission_rate - MARKET_COMMISSION_RATE, 0.0)
                                 * out.trade_amount_90d.fill_null(0.0)).cast("float64"),
        asset_growth_12m=ibis.ifelse(start_12m > 0, end / start_12m - 1, 0.0).cast("float64"),
    )
