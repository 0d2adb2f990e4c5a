"""Family 1, broker management (经纪人管理), and family 7, branch (营业部): the same client numbers, rolled up
to the people and offices accountable for them."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from features.indicators.context import Context, days
from features.indicators.definitions import Family, indicator
from features.labels import ACTIVE_ASSETS_MIN

B, R = Family.BROKER_MANAGEMENT, Family.BRANCH

BROKER_INDICATORS = [
    indicator("broker_clients_served", B, "broker", "Open accounts served by the broker.", "as-of", "count",
              "服务客户数", "int64"),
    indicator("broker_new_clients_90d", B, "broker", "Accounts opened over 90 days.", "90d", "count",
              "新增客户数", "int64"),
    indicator("broker_assets_under_service", B, "broker", "Total assets of the clients served.", "as-of", "yuan",
              "服务客户资产"),
    indicator("broker_commission_90d", B, "broker", "Commission paid by the broker's clients (those who left "
              "included) "
              "over 90 days.", "90d",
              "yuan", "佣金贡献（90天）"),
    indicator("broker_commission_365d", B, "broker", "Commission paid by the broker's clients (those who left "
              "included) "
              "over 365 days.",
              "365d", "yuan", "佣金贡献（365天）"),
    indicator("broker_net_inflow_90d", B, "broker", "Net transfers in of the broker's clients (those who left "
              "included) "
              "over 90 days.", "90d",
              "yuan", "客户资金净流入"),
    indicator("broker_client_return_avg_12m", B, "broker", "Average 12-month return of the clients served with "
              "at least 1,000 yuan.", "12 months", "fraction", "客户平均收益率", missing="0 without such clients"),
    indicator("broker_client_churn_rate_12m", B, "broker", "Share of the clients active (≥ 1,000 yuan) 12 month-"
              "ends earlier who have since closed the account or moved ≥ 80% of their assets out.", "12 months",
              "ratio 0-1", "客户流失率", missing="0 without clients active then"),
    indicator("broker_satisfaction_avg_365d", B, "broker", "Average satisfaction score of the clients served over "
              "365 days.", "365d", "score 1-5", "客户满意度", missing="3 (neutral) without surveys"),
    indicator("broker_contacts_90d", B, "broker", "Contacts the broker made over 90 days.", "90d", "count",
              "联系客户次数", "int64"),
    indicator("broker_contacts_per_client_90d", B, "broker", "Contacts over 90 days per client served.", "90d",
              "contacts per client", "人均联系次数", missing="0 without clients"),
]

BRANCH_INDICATORS = [
    indicator("branch_trade_amount_30d", R, "branch", "Value traded by the branch's clients over 30 days.", "30d",
              "yuan", "交易量（30天）"),
    indicator("branch_trade_amount_365d", R, "branch", "Value traded by the branch's clients over 365 days.",
              "365d", "yuan", "交易量（365天）"),
    indicator("branch_market_share_30d", R, "branch", "Branch trade value over 30 days / (2 × the market's trade "
              "value): buys and sells both count, as in exchange statistics.", "30d", "ratio 0-1", "市场份额"),
    indicator("branch_commission_365d", R, "branch", "Commission paid by the branch's clients over 365 days.",
              "365d", "yuan", "佣金收入"),
    indicator("branch_clients", R, "branch", "Open accounts at the branch.", "as-of", "count", "客户数", "int64"),
    indicator("branch_new_clients_90d", R, "branch", "Accounts opened over 90 days.", "90d", "count", "新开户数",
              "int64"),
    indicator("branch_closed_clients_90d", R, "branch", "Accounts closed over 90 days.", "90d", "count", "销户数",
              "int64"),
    indicator("branch_client_change_90d", R, "branch", "New minus closed accounts over 90 days.", "90d", "count",
              "客户数变动", "int64"),
    indicator("branch_assets", R, "branch", "Total assets of the branch's clients.", "as-of", "yuan", "客户资产"),
    indicator("branch_net_flow_90d", R, "branch", "Net transfers in of the branch's clients over 90 days.", "90d",
              "yuan", "资金净流入"),
    indicator("branch_satisfaction_avg_365d", R, "branch", "Average satisfaction score over 365 days.", "365d",
              "score 1-5", "满意度", missing="3 (neutral) without surveys"),
    indicator("branch_complaints_90d", R, "branch", "Complaints filed against the branch over 90 days.", "90d",
              "count", "投诉数", "int64"),
    indicator("branch_rank_by_assets", R, "branch", "Rank among branches by client assets (1 = largest).",
              "as-of", "rank", "资产排名", "int64"),
    indicator("branch_rank_by_commission_365d", R, "branch", "Rank among branches by 365-day commission "
              "(1 = largest).", "365d", "rank", "佣金排名", "int64"),
    indicator("branch_rank_by_market_share_30d", R, "branch", "Rank among branches by 30-day market share "
              "(1 = largest).", "30d", "rank", "市场份额排名", "int64"),
]


def client_churned_12m(ctx: Context) -> ir.Table:
    """Clients active at the start of the 12-month window, and whether they have churned by the as-of date."""
    s, a, c = ctx.account_snapshots, ctx.as_of, ctx.clients
    start = s.join(a, [s.snapshot_date == a.start_12m, a.start_12m < a.snap_date]).filter(
        lambda t: t.total_assets >= ACTIVE_ASSETS_MIN).select("client_id", "as_of", a0="total_assets")
    end = s.join(a, s.snapshot_date == a.snap_date).select("client_id", "as_of", a1="total_assets")
    tr = ctx.cash_transfers
    tj = tr.join(a, [tr.transfer_date > a.start_12m, tr.transfer_date <= a.snap_date])
    out = tj.group_by(["client_id", "as_of"]).aggregate(
        net_out=((tj.direction == "out").ifelse(tj.amount, -tj.amount)).sum())
    j = (start.left_join(end, ["client_id", "as_of"]).left_join(out, ["client_id", "as_of"])
         .join(c.select("client_id", "broker_id", "branch_id", "closed_on"), "client_id"))
    a1 = j.a1.fill_null(0.0)
    fell = (a1 <= 0.2 * j.a0) & (j.net_out.fill_null(0.0) >= 0.5 * (j.a0 - a1))
    closed = j.closed_on.notnull() & (j.closed_on <= j.as_of)
    return j.select("client_id", "broker_id", "branch_id", "as_of", churned=fell | closed)


def _money_by(ctx: Context, key: str) -> ir.Table:
    """Commission and net inflow of all clients attached to a broker or branch, departed ones included."""
    owners = ctx.clients.select("client_id", key)
    tj = ctx.windowed(ctx.trades.join(owners, "client_id"), "trade_date", 365)
    trades = tj.group_by([key, "as_of"]).aggregate(
        commission_90d=tj.commission.sum(where=tj.trade_date > tj.as_of - days(90)),
        commission_365d=tj.commission.sum(),
        trade_amount_30d=tj.amount.sum(where=tj.trade_date > tj.as_of - days(30)),
        trade_amount_365d=tj.amount.sum(),
    )
    fj = ctx.windowed(ctx.cash_transfers.join(owners, "client_id"), "transfer_date", 90)
    flows = fj.group_by([key, "as_of"]).aggregate(
        net_inflow_90d=((fj.direction == "in").ifelse(fj.amount, -fj.amount)).sum())
    return trades.outer_join(flows, [key, "as_of"]).select(
        **{key: ibis.coalesce(trades[key], flows[key]), "as_of": ibis.coalesce(trades.as_of, flows.as_of)},
        commission_90d=trades.commission_90d.fill_null(0.0),
        commission_365d=trades.commission_365d.fill_null(0.0),
        trade_amount_30d=trades.trade_amount_30d.fill_null(0.0),
        trade_amount_365d=trades.trade_amount_365d.fill_null(0.0),
        net_inflow_90d=flows.net_inflow_90d.fill_null(0.0),
    )


def broker_indicators(ctx: Context, clients: ir.Table) -> ir.Table:
    """``clients`` holds client indicators (client_id, as_of, total_assets, return_12m)."""
    pop = ctx.population()
    cj = pop.select("client_id", "as_of", "broker_id", "opened_on").join(clients, ["client_id", "as_of"])
    base = cj.group_by(["broker_id", "as_of"]).aggregate(
        broker_clients_served=cj.count(),
        broker_assets_under_service=cj.total_assets.sum(),
        broker_client_return_avg_12m=cj.return_12m.mean(where=cj.total_assets >= ACTIVE_ASSETS_MIN),
    )
    opened = ctx.windowed(ctx.clients, "opened_on", 90)
    opened = opened.group_by(["broker_id", "as_of"]).aggregate(broker_new_clients_90d=opened.count())
    money = _money_by(ctx, "broker_id")
    churn = client_churned_12m(ctx)
    churn = churn.group_by(["broker_id", "as_of"]).aggregate(broker_client_churn_rate_12m=churn.churned.mean())
    sv = ctx.windowed(ctx.satisfaction_surveys.join(ctx.clients.select("client_id", "broker_id"), "client_id"),
                      "surveyed_on", 365)
    satisfaction = sv.group_by(["broker_id", "as_of"]).aggregate(broker_satisfaction_avg_365d=sv.score.mean())
    ct = ctx.windowed(ctx.contacts, "contact_date", 90)
    contacts = ct.group_by(["broker_id", "as_of"]).aggregate(broker_contacts_90d=ct.count())
    out = ctx.brokers.select("broker_id").cross_join(ctx.as_of.select("as_of"))
    for part in (base, opened, money, churn, satisfaction, contacts):
        out = out.left_join(part, ["broker_id", "as_of"])
    served = out.broker_clients_served.fill_null(0)
    contacts_90d = out.broker_contacts_90d.fill_null(0)
    return out.select(
        "broker_id", "as_of",
        broker_clients_served=served.cast("int64"),
        broker_new_clients_90d=out.broker_new_clients_90d.fill_null(0).cast("int64"),
        broker_assets_under_service=out.broker_assets_under_service.fill_null(0.0),
        broker_commission_90d=out.commission_90d.fill_null(0.0),
        broker_commission_365d=out.commission_365d.fill_null(0.0),
        broker_net_inflow_90d=out.net_inflow_90d.fill_null(0.0),
        broker_client_return_avg_12m=out.broker_client_return_avg_12m.fill_null(0.0),
        broker_client_churn_rate_12m=out.broker_client_churn_rate_12m.cast("float64").fill_null(0.0),
        broker_satisfaction_avg_365d=out.broker_satisfaction_avg_365d.fill_null(3.0),
        broker_contacts_90d=contacts_90d.cast("int64"),
        broker_contacts_per_client_90d=ibis.ifelse(served > 0, contacts_90d / served, 0.0),
    )


def branch_indicators(ctx: Context, clients: ir.Table) -> ir.Table:
    pop = ctx.population()
    cj = pop.select("client_id", "as_of", "branch_id").join(clients, ["client_id", "as_of"])
    base = cj.group_by(["branch_id", "as_of"]).aggregate(branch_clients=cj.count(), branch_assets=cj.total_assets.sum())
    trades = _money_by(ctx, "branch_id")
    mj = ctx.windowed(ctx.market_index, "trade_date", 30)
    market = mj.group_by("as_of").aggregate(market_amount_30d=mj.amount.sum())
    c = ctx.clients
    opened = ctx.windowed(c, "opened_on", 90)
    opened = opened.group_by(["branch_id", "as_of"]).aggregate(branch_new_clients_90d=opened.count())
    closed = ctx.windowed(c.filter(c.closed_on.notnull()), "closed_on", 90)
    closed = closed.group_by(["branch_id", "as_of"]).aggregate(branch_closed_clients_90d=closed.count())
    sv = ctx.windowed(ctx.satisfaction_surveys.join(c.select("client_id", "branch_id"), "client_id"),
                      "surveyed_on", 365)
    satisfaction = sv.group_by(["branch_id", "as_of"]).aggregate(branch_satisfaction_avg_365d=sv.score.mean())
    cp = ctx.windowed(ctx.complaints, "filed_on", 90)
    complaints = cp.group_by(["branch_id", "as_of"]).aggregate(branch_complaints_90d=cp.count())
    branches = ctx.branches.select("branch_id").cross_join(ctx.as_of.select("as_of"))
    out = branches
    for part in (base, trades, opened, closed, satisfaction, complaints):
        out = out.left_join(part, ["branch_id", "as_of"])
    out = out.left_join(market, "as_of")
    new, gone = out.branch_new_clients_90d.fill_null(0), out.branch_closed_clients_90d.fill_null(0)
    amount_30d = out.trade_amount_30d.fill_null(0.0)
    share = ibis.ifelse(out.market_amount_30d.fill_null(0.0) > 0, amount_30d / (2 * out.market_amount_30d), 0.0)
    out = out.select(
        "branch_id", "as_of",
        branch_trade_amount_30d=amount_30d,
        branch_trade_amount_365d=out.trade_amount_365d.fill_null(0.0),
        branch_market_share_30d=share,
        branch_commission_365d=out.commission_365d.fill_null(0.0),
        branch_clients=out.branch_clients.fill_null(0).cast("int64"),
        branch_new_clients_90d=new.cast("int64"),
        branch_closed_clients_90d=gone.cast("int64"),
        branch_client_change_90d=(new - gone).cast("int64"),
        branch_assets=out.branch_assets.fill_null(0.0),
        branch_net_flow_90d=out.net_inflow_90d.fill_null(0.0),
        branch_satisfaction_avg_365d=out.branch_satisfaction_avg_365d.fill_null(3.0),
        branch_complaints_90d=out.branch_complaints_90d.fill_null(0).cast("int64"),
    )

    def rank(column: str) -> ir.IntegerColumn:
        w = ibis.window(group_by=out.as_of, order_by=ibis.desc(out[column]))
        return (ibis.rank().over(w) + 1).cast("int64")

    return out.mutate(
        branch_rank_by_assets=rank("branch_assets"),
        branch_rank_by_commission_365d=rank("branch_commission_365d"),
        branch_rank_by_market_share_30d=rank("branch_market_share_30d"),
    )
