"""Family 6, client flow (客户流动性): inflows, outflows, net flow, asset change, dormancy, large withdrawals."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from features.indicators.context import Context, days
from features.indicators.definitions import Family, indicator

F, E = Family.CLIENT_FLOW, "client"
LARGE_WITHDRAWAL_YUAN = 50_000
RECENCY_CAP_DAYS = 365

INDICATORS = [
    *[indicator(f"{kind}_{w}d", F, E, f"{text} over the last {w} days.", f"{w}d", "yuan", f"{zh}（{w}天）",
                missing="0 without transfers")
      for kind, text, zh in (("inflow", "Transfers in (bank → securities)", "资金转入"),
                             ("outflow", "Transfers out (securities → bank)", "资金转出"),
                             ("net_flow", "Transfers in minus transfers out", "资金净流入"))
      for w in (30, 90, 365)],
    indicator("large_withdrawals_90d", F, E, f"Transfers out of at least {LARGE_WITHDRAWAL_YUAN:,} yuan over 90 "
              "days.", "90d", "count", "大额转出次数", "int64", missing="0"),
    indicator("outflow_share_90d", F, E, "Transfers out over 90 days / (total assets now + those transfers "
              "out): the share of the account moved out.", "90d", "ratio 0-1", "资金流出占比", missing="0"),
    indicator("asset_change_3m", F, E, "Total assets at the as-of month-end / three month-ends earlier - 1.",
              "3 months", "fraction", "资产变动（3个月）", missing="0 without starting assets"),
    indicator("days_since_last_trade", F, E, "Days since the last trade.", "365d", "days", "最近交易间隔", "int64",
              missing=f"{RECENCY_CAP_DAYS} (or the tenure if shorter) without a trade in {RECENCY_CAP_DAYS} days"),
    indicator("days_since_last_transfer", F, E, "Days since the last bank-securities transfer.", "365d", "days",
              "最近转账间隔", "int64",
              missing=f"{RECENCY_CAP_DAYS} (or the tenure if shorter) without a transfer in {RECENCY_CAP_DAYS} days"),
    indicator("own_branch_outflow_share_90d", F, E, "Transfers out by all clients of the client's branch over 90 "
              "days / (the branch's client assets now + those transfers out): money leaving the branch, as when "
              "a competitor campaigns in its city.", "90d", "ratio 0-1", "所属营业部资金流出占比", missing="0"),
    indicator("dormant_90d", F, E, "No trade and no transfer over the last 90 days.", "90d", "flag", "休眠账户",
              "bool"),
]


def compute(ctx: Context) -> ir.Table:
    pop = ctx.population()
    tr = ctx.windowed(ctx.cash_transfers, "transfer_date", 365)
    is_in, is_out = tr.direction == "in", tr.direction == "out"
    aggregates = {}
    for w in (30, 90, 365):
        inside = tr.transfer_date > tr.as_of - days(w)
        aggregates[f"inflow_{w}d"] = tr.amount.sum(where=inside & is_in)
        aggregates[f"outflow_{w}d"] = tr.amount.sum(where=inside & is_out)
    flows = tr.group_by(["client_id", "as_of"]).aggregate(
        **aggregates,
        large_withdrawals_90d=(is_out & (tr.amount >= LARGE_WITHDRAWAL_YUAN)
                               & (tr.transfer_date > tr.as_of - days(90))).sum(),
        last_transfer=tr.transfer_date.max(),
    )
    tj = ctx.windowed(ctx.trades, "trade_date", RECENCY_CAP_DAYS)
    trades = tj.group_by(["client_id", "as_of"]).aggregate(last_trade=tj.trade_date.max())
    assets = ctx.assets()
    bt = ctx.windowed(ctx.cash_transfers.filter(ctx.cash_transfers.direction == "out")
                      .join(ctx.clients.select("client_id", "branch_id"), "client_id"), "transfer_date", 90)
    branch_out = bt.group_by(["branch_id", "as_of"]).aggregate(branch_outflow=bt.amount.sum())
    branch = ctx.branch_assets().left_join(branch_out, ["branch_id", "as_of"]).select(
        "branch_id", "as_of", branch_assets="branch_assets", branch_outflow=branch_out.branch_outflow.fill_null(0.0))
    out = (
        pop.left_join(branch, ["branch_id", "as_of"])
        .left_join(flows, ["client_id", "as_of"])
        .left_join(trades, ["client_id", "as_of"])
        .left_join(assets, ["client_id", "as_of"])
    )
    tenure = out.as_of.delta(out.opened_on, unit="day")
    cap = ibis.least(tenure, RECENCY_CAP_DAYS)
    since_trade = ibis.coalesce(out.as_of.delta(out.last_trade, unit="day"), cap)
    since_transfer = ibis.coalesce(out.as_of.delta(out.last_transfer, unit="day"), cap)
    columns = {f"{k}_{w}d": out[f"{k}_{w}d"].fill_null(0.0) for k in ("inflow", "outflow") for w in (30, 90, 365)}
    for w in (30, 90, 365):
        columns[f"net_flow_{w}d"] = columns[f"inflow_{w}d"] - columns[f"outflow_{w}d"]
    end = out.assets.fill_null(0.0)
    start = out.assets_first_3m.fill_null(0.0)
    moved = columns["outflow_90d"]
    return out.select(
        "client_id", "as_of",
        **columns,
        large_withdrawals_90d=out.large_withdrawals_90d.fill_null(0).cast("int64"),
        outflow_share_90d=ibis.ifelse(end + moved > 0, moved / (end + moved), 0.0),
        asset_change_3m=ibis.ifelse(start > 0, end / start - 1, 0.0),
        days_since_last_trade=since_trade.cast("int64"),
        days_since_last_transfer=since_transfer.cast("int64"),
        own_branch_outflow_share_90d=ibis.ifelse(
            out.branch_assets.fill_null(0.0) + out.branch_outflow.fill_null(0.0) > 0,
            out.branch_outflow.fill_null(0.0) / (out.branch_assets.fill_null(0.0) + out.branch_outflow.fill_null(0.0)),
            0.0),
        dormant_90d=(since_trade >= 90) & (since_transfer >= 90),
    )
