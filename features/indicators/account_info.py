"""Family 4, account information (客户帐户信息): holding periods, industry preference, securitisation,
turnover, and the appetite for new and sub-new stocks."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from features.indicators.context import Context
from features.indicators.definitions import Family, indicator

F, E = Family.ACCOUNT_INFO, "client"
LONG_HOLDING_DAYS = 180
NEW_STOCK_DAYS = 60  # calendar days after listing: a new stock (新股)
SUB_NEW_STOCK_DAYS = 365  # a sub-new stock (次新股)

INDICATORS = [
    indicator("holding_period_days_avg", F, E, "Market-value-weighted average age of current holdings "
              "(days since first bought).", "as-of", "days", "平均持股时间", missing="0 when nothing is held"),
    indicator("long_holding_share", F, E, f"Share of market value held longer than {LONG_HOLDING_DAYS} days.",
              "as-of", "ratio 0-1", "长期持股占比", missing="0 when nothing is held"),
    indicator("top_industry", F, E, "Industry with the largest share of market value.", "as-of", "category",
              "偏好行业", "string", missing="'none' when nothing is held"),
    indicator("top_industry_share", F, E, "Share of market value in the top industry.", "as-of", "ratio 0-1",
              "偏好行业占比", missing="0 when nothing is held"),
    indicator("industry_count", F, E, "Number of distinct industries held.", "as-of", "count", "持仓行业数",
              "int64", missing="0 when nothing is held"),
    indicator("positions_count", F, E, "Number of stocks held.", "as-of", "count", "持仓股票数", "int64",
              missing="0 when nothing is held"),
    indicator("securitisation_ratio", F, E, "Market value / total assets.", "as-of", "ratio 0-1", "资产证券化率",
              missing="0 without assets"),
    indicator("cash_balance", F, E, "Cash in the account at the latest month-end.", "as-of", "yuan", "资金余额",
              missing="0 without a snapshot"),
    indicator("market_value", F, E, "Market value of holdings at the latest month-end.", "as-of", "yuan",
              "证券市值", missing="0 without a snapshot"),
    indicator("asset_turnover_365d", F, E, "Value traded over 365 days / average month-end assets over the same "
              "12 months.", "365d", "times", "资产周转率", missing="0 without trades or assets"),
    indicator("new_stock_buy_share_365d", F, E, f"Share of bought value in stocks listed within {NEW_STOCK_DAYS} "
              "days before the buy.", "365d", "ratio 0-1", "新股偏好", missing="0 without buys"),
    indicator("sub_new_stock_buy_share_365d", F, E, f"Share of bought value in stocks listed within "
              f"{SUB_NEW_STOCK_DAYS} days before the buy.", "365d", "ratio 0-1", "次新股偏好",
              missing="0 without buys"),
    indicator("commission_rate", F, E, "Commission rate of the account (before the 5-yuan minimum), as "
              "recorded on the account.", "as-of", "fraction of traded amount", "佣金费率"),
    indicator("growth_board_buy_share_365d", F, E, "Share of bought value in ChiNext and STAR stocks over 365 days.",
              "365d", "ratio 0-1", "创业板/科创板买入占比", missing="0 without buys"),
    indicator("st_buy_share_365d", F, E, "Share of bought value in ST stocks over 365 days.", "365d", "ratio 0-1",
              "ST股买入占比", missing="0 without buys"),
    indicator("ipo_subscriptions_365d", F, E, "IPO subscriptions made over 365 days.", "365d", "count",
              "新股申购次数", "int64", missing="0 without subscriptions"),
    indicator("ipo_allotments_365d", F, E, "IPO subscriptions allotted and paid over 365 days.", "365d", "count",
              "新股中签次数", "int64", missing="0 without subscriptions"),
]


def compute(ctx: Context) -> ir.Table:
    pop = ctx.population()
    assets = ctx.assets()
    pos, sec, a = ctx.positions, ctx.securities, ctx.as_of
    held = pos.join(a, pos.snapshot_date == a.snap_date).join(sec, "security_id")
    total_mv = held.market_value.sum().over(group_by=[held.client_id, held.as_of])
    held = held.mutate(weight=ibis.ifelse(total_mv > 0, held.market_value / total_mv, 0.0),
                       age=held.as_of.delta(held.first_bought_on, unit="day"))
    holdings = held.group_by(["client_id", "as_of"]).aggregate(
        holding_period_days_avg=(held.weight * held.age).sum(),
        long_holding_share=held.weight.sum(where=held.age > LONG_HOLDING_DAYS),
        industry_count=held.industry.nunique(),
        positions_count=held.count(),
    )
    by_industry = held.group_by(["client_id", "as_of", "industry"]).aggregate(share=held.weight.sum())
    top = by_industry.group_by(["client_id", "as_of"]).aggregate(
        top_industry=by_industry.industry.argmax(by_industry.share),
        top_industry_share=by_industry.share.max(),
    )

    tj = ctx.windowed(ctx.trades.join(sec.select("security_id", "listed_on", "board", "is_st"), "security_id"),
                      "trade_date", 365)
    is_buy = tj.side == "buy"
    listed_for = tj.trade_date.delta(tj.listed_on, unit="day")
    trades = tj.group_by(["client_id", "as_of"]).aggregate(
        traded=tj.amount.sum(),
        bought=tj.amount.sum(where=is_buy),
        bought_new=tj.amount.sum(where=is_buy & (listed_for <= NEW_STOCK_DAYS)),
        bought_sub_new=tj.amount.sum(where=is_buy & (listed_for <= SUB_NEW_STOCK_DAYS)),
        bought_growth=tj.amount.sum(where=is_buy & tj.board.isin(["chinext", "star"])),
        bought_st=tj.amount.sum(where=is_buy & tj.is_st),
    )
    s = ctx.account_snapshots
    sj = s.join(a, [s.snapshot_date <= a.snap_date, s.snapshot_date >= a.start_12m])
    average_assets = sj.group_by(["client_id", "as_of"]).aggregate(average_assets=sj.total_assets.mean())
    ij = ctx.windowed(ctx.ipo_subscriptions, "subscribed_on", 365)
    ipos = ij.group_by(["client_id", "as_of"]).aggregate(
        ipo_subscriptions_365d=ij.count(), ipo_allotments_365d=(ij.status == "allotted").sum())

    out = (
        pop.left_join(assets, ["client_id", "as_of"])
        .left_join(holdings, ["client_id", "as_of"])
        .left_join(top, ["client_id", "as_of"])
        .left_join(trades, ["client_id", "as_of"])
        .left_join(average_assets, ["client_id", "as_of"])
        .left_join(ipos, ["client_id", "as_of"])
    )
    total = out.assets.fill_null(0.0)
    bought = out.bought.fill_null(0.0)
    return out.select(
        "client_id", "as_of",
        holding_period_days_avg=out.holding_period_days_avg.fill_null(0.0).cast("float64"),
        long_holding_share=out.long_holding_share.fill_null(0.0),
        top_industry=out.top_industry.fill_null("none"),
        top_industry_share=out.top_industry_share.fill_null(0.0),
        industry_count=out.industry_count.fill_null(0).cast("int64"),
        positions_count=out.positions_count.fill_null(0).cast("int64"),
        securitisation_ratio=ibis.ifelse(total > 0, out.market_value.fill_null(0.0) / total, 0.0),
        cash_balance=out.cash.fill_null(0.0),
        market_value=out.market_value.fill_null(0.0),
        asset_turnover_365d=ibis.ifelse(out.average_assets.fill_null(0.0) > 0,
                                        out.traded.fill_null(0.0) / out.average_assets, 0.0),
        new_stock_buy_share_365d=ibis.ifelse(bought > 0, out.bought_new.fill_null(0.0) / bought, 0.0),
        sub_new_stock_buy_share_365d=ibis.ifelse(bought > 0, out.bought_sub_new.fill_null(0.0) / bought, 0.0),
        commission_rate=out.commission_rate.cast("float64"),
        growth_board_buy_share_365d=ibis.ifelse(bought > 0, out.bought_growth.fill_null(0.0) / bought, 0.0),
        st_buy_share_365d=ibis.ifelse(bought > 0, out.bought_st.fill_null(0.0) / bought, 0.0),
        ipo_subscriptions_365d=out.ipo_subscriptions_365d.fill_null(0).cast("int64"),
        ipo_allotments_365d=out.ipo_allotments_365d.fill_null(0).cast("int64"),
    )
