"""Family 2, client category (客户类别): type, asset tier, stated and behavioural risk, trading ability."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from features.indicators.context import Context, days
from features.indicators.definitions import Family, indicator

F, E = Family.CLIENT_CATEGORY, "client"
QUESTIONNAIRE_VALID_DAYS = 730
SELECTION_HORIZON_DAYS = 20  # trading days a bought stock is followed for the stock-selection score
TIMING_HORIZON_DAYS = 10  # trading days of market return after a day of net buying, for the timing score
INFORMED_BUY_DAYS = 5  # a buy within this many days after reading a report on the stock is "informed"
MIN_SCORED_BUYS = 3

ASSET_TIERS = (("retail", 0), ("mass_affluent", 100_000), ("high_net_worth", 1_000_000),
               ("ultra_high_net_worth", 10_000_000))
ABILITY_CLASSES = ("self_directed", "information_dependent", "blind", "insufficient_history")

INDICATORS = [
    indicator("client_type", F, E, "Client type from the account: individual, broker_introduced or institution.",
              "as-of", "category", "客户类型", "string"),
    indicator("asset_tier", F, E, "Total assets banded: retail < 100k, mass_affluent < 1m, high_net_worth < 10m, "
              "else ultra_high_net_worth.", "as-of", "category", "资产层级", "string"),
    indicator("total_assets", F, E, "Cash plus market value at the latest month-end on or before the as-of date.",
              "as-of", "yuan", "总资产", missing="0 when the account has no snapshot yet"),
    indicator("stated_risk_level", F, E, "Questionnaire risk level C1..C5 as 1..5.", "as-of", "level 1-5",
              "风险承受能力等级", "int64", missing="0 when no questionnaire is known on the as-of date"),
    indicator("risk_assessment_age_days", F, E, "Days since the latest risk questionnaire.", "as-of", "days",
              "风险测评距今天数", "int64", missing="-1 when no questionnaire is known on the as-of date"),
    indicator("questionnaire_expired", F, E, f"The questionnaire is older than {QUESTIONNAIRE_VALID_DAYS} days, "
              "or none is known on the as-of date.", "as-of", "flag", "风险测评过期", "bool"),
    indicator("holdings_volatility_90d", F, E, "Market-value-weighted average of the held stocks' daily return "
              "standard deviation over 90 days.", "90d", "fraction per day", "持仓波动率",
              missing="0 when nothing is held"),
    indicator("growth_board_share", F, E, "Share of market value in ChiNext and STAR stocks.", "as-of",
              "ratio 0-1", "创业板/科创板持仓占比", missing="0 when nothing is held"),
    indicator("st_share", F, E, "Share of market value in ST stocks.", "as-of", "ratio 0-1", "ST股持仓占比",
              missing="0 when nothing is held"),
    indicator("holdings_concentration_hhi", F, E, "Herfindahl index of position weights (1 = one stock).",
              "as-of", "ratio 0-1", "持仓集中度", missing="0 when nothing is held"),
    indicator("market_timing_score_365d", F, E, "Correlation between the client's daily net buying ratio "
              f"(buy-sell)/(buy+sell) and the market's return over the next {TIMING_HORIZON_DAYS} trading days, "
              "over trading days whose horizon ended by the as-of date.", "365d", "correlation -1..1", "择时能力",
              missing=f"0 with fewer than {MIN_SCORED_BUYS} scored days"),
    indicator("stock_selection_score_365d", F, E, "Amount-weighted excess return over the market of the stocks "
              f"bought, over the {SELECTION_HORIZON_DAYS} trading days after each buy (horizons ended by the as-of "
              "date).", "365d", "fraction", "选股能力", missing=f"0 with fewer than {MIN_SCORED_BUYS} scored buys"),
    indicator("informed_buy_share_365d", F, E, f"Share of buys made within {INFORMED_BUY_DAYS} days after reading "
              "a research report on the same stock.", "365d", "ratio 0-1", "研报驱动交易占比",
              missing="0 without buys"),
    indicator("trading_ability_class", F, E, "information_dependent if informed_buy_share ≥ 0.25; else "
              "self_directed if stock selection > 0.5% or market timing > 0.1; else blind; "
              f"insufficient_history with fewer than {MIN_SCORED_BUYS} scored buys.", "365d", "category",
              "交易能力类别（自主/外部信息依赖/盲目）", "string"),
]


def forward_excess_returns(ctx: Context) -> ir.Table:
    """Per stock and day: excess return over the index across the next trading days, and when that ends."""
    p, m = ctx.daily_prices, ctx.market_index
    by_stock = ibis.window(group_by=p.security_id, order_by=p.trade_date)
    p = p.mutate(fwd_close=p.close.lead(SELECTION_HORIZON_DAYS).over(by_stock),
                 fwd_date=p.trade_date.lead(SELECTION_HORIZON_DAYS).over(by_stock))
    by_day = ibis.window(order_by=m.trade_date)
    m = m.mutate(index_fwd=m.close.lead(SELECTION_HORIZON_DAYS).over(by_day), index_close=m.close)
    j = p.join(m.select("trade_date", "index_close", "index_fwd"), "trade_date")
    return j.select(
        "security_id", "trade_date", "fwd_date",
        excess=(j.fwd_close / j.close) - (j.index_fwd / j.index_close),
    ).filter(lambda t: t.fwd_date.notnull())


def market_forward_returns(ctx: Context) -> ir.Table:
    m = ctx.market_index
    w = ibis.window(order_by=m.trade_date)
    return m.select(
        "trade_date",
        market_fwd=m.close.lead(TIMING_HORIZON_DAYS).over(w) / m.close - 1,
        market_fwd_date=m.trade_date.lead(TIMING_HORIZON_DAYS).over(w),
    ).filter(lambda t: t.market_fwd_date.notnull())


def informed_buys(ctx: Context) -> ir.Table:
    """Buys flagged when the client read a report on that stock in the days before (reads ≤ buy date)."""
    t = ctx.trades.filter(ctx.trades.side == "buy")
    reads = ctx.report_reads.join(ctx.research_reports.filter(ctx.research_reports.security_id.notnull()),
                                  "report_id").select("client_id", "security_id", "read_on")
    j = t.left_join(reads, [t.client_id == reads.client_id, t.security_id == reads.security_id,
                            reads.read_on <= t.trade_date, reads.read_on >= t.trade_date - days(INFORMED_BUY_DAYS)])
    return j.group_by([t.trade_id, t.client_id, t.security_id, t.trade_date, t.amount]).aggregate(
        informed=j.read_on.notnull().any())


def compute(ctx: Context) -> ir.Table:
    pop = ctx.population()
    assets = ctx.assets()
    base = pop.left_join(assets, ["client_id", "as_of"]).select(
        pop, total_assets=assets.assets.fill_null(0.0))

    # Holdings at the as-of snapshot: board mix, ST share, concentration and volatility.
    pos, sec = ctx.positions, ctx.securities
    held = pos.join(ctx.as_of, pos.snapshot_date == ctx.as_of.snap_date).join(sec, "security_id")
    prices = ctx.windowed(ctx.daily_prices, "trade_date", 90)
    vol = prices.group_by(["security_id", "as_of"]).aggregate(
        volatility=(prices.close / prices.prev_close - 1).std())
    held = held.left_join(vol, ["security_id", "as_of"])
    total_mv = held.market_value.sum().over(group_by=[held.client_id, held.as_of])
    held = held.mutate(weight=ibis.ifelse(total_mv > 0, held.market_value / total_mv, 0.0))
    holdings = held.group_by(["client_id", "as_of"]).aggregate(
        holdings_volatility_90d=(held.weight * held.volatility.fill_null(0.0)).sum(),
        growth_board_share=held.weight.sum(where=held.board.isin(["chinext", "star"])),
        st_share=held.weight.sum(where=held.is_st),
        holdings_concentration_hhi=(held.weight * held.weight).sum(),
    )

    # Stock selection: excess return after each buy, counted once its horizon has ended.
    buys = informed_buys(ctx)
    fwd = forward_excess_returns(ctx)
    scored = buys.left_join(fwd, ["security_id", "trade_date"]).select(buys, fwd.excess, fwd.fwd_date)
    sj = ctx.windowed(scored, "trade_date", 365)
    done = sj.fwd_date.notnull() & (sj.fwd_date <= sj.as_of)
    selection = sj.group_by(["client_id", "as_of"]).aggregate(
        scored_buys=done.sum(),
        weighted_excess=(sj.excess * sj.amount).sum(where=done),
        scored_amount=sj.amount.sum(where=done),
        buys=sj.count(),
        informed_buys=sj.informed.sum(),
    )

    # Market timing: net buying against the market's next two weeks.
    t = ctx.trades
    daily = t.group_by(["client_id", "trade_date"]).aggregate(
        net_buy=((t.side == "buy").ifelse(t.amount, -t.amount)).sum() / t.amount.sum())
    daily = daily.join(market_forward_returns(ctx), "trade_date")
    tj = ctx.windowed(daily, "trade_date", 365)
    tj = tj.filter(tj.market_fwd_date <= tj.as_of)
    timing = tj.group_by(["client_id", "as_of"]).aggregate(
        timing_days=tj.count(), timing_corr=tj.net_buy.corr(tj.market_fwd, how="pop"))

    out = (
        base.left_join(holdings, ["client_id", "as_of"])
        .left_join(selection, ["client_id", "as_of"])
        .left_join(timing, ["client_id", "as_of"])
    )
    scored_buys = out.scored_buys.fill_null(0)
    selection_score = ibis.ifelse(
        (scored_buys >= MIN_SCORED_BUYS) & (out.scored_amount > 0), out.weighted_excess / out.scored_amount, 0.0)
    corr = out.timing_corr.fill_null(0.0)
    # A correlation is undefined (NaN) when the client always bought or always sold.
    timing_score = ibis.ifelse((out.timing_days.fill_null(0) >= MIN_SCORED_BUYS) & ~corr.isnan(), corr, 0.0)
    informed_share = ibis.ifelse(out.buys.fill_null(0) > 0, out.informed_buys.cast("float64") / out.buys, 0.0)
    tier = ibis.cases(
        (out.total_assets >= ASSET_TIERS[3][1], ASSET_TIERS[3][0]),
        (out.total_assets >= ASSET_TIERS[2][1], ASSET_TIERS[2][0]),
        (out.total_assets >= ASSET_TIERS[1][1], ASSET_TIERS[1][0]),
        else_=ASSET_TIERS[0][0],
    )
    ability = ibis.cases(
        (scored_buys < MIN_SCORED_BUYS, "insufficient_history"),
        (informed_share >= 0.25, "information_dependent"),
        ((selection_score > 0.005) | (timing_score > 0.1), "self_directed"),
        else_="blind",
    )
    # The raw table keeps the latest questionnaire only: one taken after the as-of date was unknown then.
    known = out.risk_assessed_on <= out.as_of
    assessment_age = out.as_of.delta(out.risk_assessed_on, unit="day")
    return out.select(
        "client_id", "as_of",
        client_type=out.client_type,
        asset_tier=tier,
        total_assets=out.total_assets,
        stated_risk_level=ibis.ifelse(known, out.risk_level.substr(1, 1).cast("int64"), 0),
        risk_assessment_age_days=ibis.ifelse(known, assessment_age, -1).cast("int64"),
        questionnaire_expired=~known | (assessment_age > QUESTIONNAIRE_VALID_DAYS),
        holdings_volatility_90d=out.holdings_volatility_90d.fill_null(0.0),
        growth_board_share=out.growth_board_share.fill_null(0.0),
        st_share=out.st_share.fill_null(0.0),
        holdings_concentration_hhi=out.holdings_concentration_hhi.fill_null(0.0),
        market_timing_score_365d=timing_score.cast("float64"),
        stock_selection_score_365d=selection_score.cast("float64"),
        informed_buy_share_365d=informed_share.cast("float64"),
        trading_ability_class=ability,
    )
