"""Family 5, client feedback (客户反馈): satisfaction, research reads and ratings, complaints, contacts."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from features.indicators.context import Context, days
from features.indicators.definitions import Family, indicator

F, E = Family.CLIENT_FEEDBACK, "client"
NEUTRAL_SCORE = 3.0
RECENCY_CAP_DAYS = 365
CHANNELS = ("phone", "wechat", "visit", "sms")

INDICATORS = [
    indicator("satisfaction_latest", F, E, "Score (1-5) of the latest satisfaction survey within 365 days.",
              "365d", "score 1-5", "满意度", missing=f"{NEUTRAL_SCORE:g} (neutral) when not surveyed"),
    indicator("surveys_365d", F, E, "Satisfaction surveys answered over 365 days.", "365d", "count",
              "满意度调查次数", "int64", missing="0"),
    indicator("report_reads_30d", F, E, "Research reports read over 30 days.", "30d", "count", "研报阅读量（30天）",
              "int64", missing="0"),
    indicator("report_reads_90d", F, E, "Research reports read over 90 days.", "90d", "count", "研报阅读量（90天）",
              "int64", missing="0"),
    indicator("report_rating_avg_365d", F, E, "Average usefulness rating (1-5) given to reports over 365 days.",
              "365d", "score 1-5", "研报有用性评价", missing=f"{NEUTRAL_SCORE:g} (neutral) without ratings"),
    indicator("report_ratings_365d", F, E, "Report ratings given over 365 days.", "365d", "count", "研报评价次数",
              "int64", missing="0"),
    indicator("complaints_90d", F, E, "Complaints filed over 90 days.", "90d", "count", "投诉次数（90天）", "int64",
              missing="0"),
    indicator("complaints_365d", F, E, "Complaints filed over 365 days.", "365d", "count", "投诉次数（365天）",
              "int64", missing="0"),
    indicator("fee_complaints_365d", F, E, "Complaints about fees filed over 365 days.", "365d", "count",
              "费用投诉次数", "int64", missing="0"),
    indicator("open_complaints", F, E, "Complaints filed and not resolved by the as-of date.", "all history",
              "count", "未解决投诉", "int64", missing="0"),
    indicator("contacts_30d", F, E, "Contacts from the broker over 30 days: clients who dislike calls feel "
              "the last few weeks' contacts.", "30d", "count", "联系次数（30天）", "int64", missing="0"),
    indicator("contacts_90d", F, E, "Contacts from the broker over 90 days.", "90d", "count", "联系次数（90天）",
              "int64", missing="0"),
    *[indicator(f"contacts_{c}_90d", F, E, f"Contacts by {c} over 90 days.", "90d", "count",
                f"{zh}联系次数（90天）", "int64", missing="0")
      for c, zh in zip(CHANNELS, ("电话", "微信", "拜访", "短信"), strict=True)],
    indicator("contact_reached_share_90d", F, E, "Share of the 90 days' contacts that reached the client "
              "(reached or interested).", "90d", "ratio 0-1", "联系成功率", missing="0 without contacts"),
    indicator("own_branch_satisfaction_365d", F, E, "Average satisfaction score of all surveys at the client's "
              "branch over 365 days: the service the branch gives.", "365d", "score 1-5", "所属营业部满意度",
              missing=f"{NEUTRAL_SCORE:g} (neutral) without surveys"),
    indicator("own_broker_contacts_per_client_90d", F, E, "Contacts the client's broker made over 90 days per "
              "client the broker serves: the broker's diligence.", "90d", "contacts per client",
              "服务经纪人人均联系次数", missing="0"),
    indicator("own_branch_fee_complaints_30d", F, E, "Fee complaints filed at the client's branch over 30 days per "
              "1,000 open accounts there: a sign that a competitor is offering lower commission nearby.", "30d",
              "complaints per 1,000 accounts", "所属营业部费用投诉率", missing="0"),
    indicator("days_since_last_contact", F, E, "Days since the broker last contacted the client.", "365d", "days",
              "最近联系间隔", "int64",
              missing=f"{RECENCY_CAP_DAYS} (or the tenure if shorter) when not contacted in {RECENCY_CAP_DAYS} days"),
]


def compute(ctx: Context) -> ir.Table:
    pop = ctx.population()
    sv = ctx.windowed(ctx.satisfaction_surveys, "surveyed_on", 365)
    surveys = sv.group_by(["client_id", "as_of"]).aggregate(
        satisfaction_latest=sv.score.argmax(sv.surveyed_on), surveys_365d=sv.count())
    rd = ctx.windowed(ctx.report_reads, "read_on", 365)
    reads = rd.group_by(["client_id", "as_of"]).aggregate(
        report_reads_30d=(rd.read_on > rd.as_of - days(30)).sum(),
        report_reads_90d=(rd.read_on > rd.as_of - days(90)).sum(),
        report_rating_avg_365d=rd.rating.mean(),
        report_ratings_365d=rd.rating.count(),
    )
    cp = ctx.up_to(ctx.complaints, "filed_on")
    complaints = cp.group_by(["client_id", "as_of"]).aggregate(
        complaints_90d=(cp.filed_on > cp.as_of - days(90)).sum(),
        complaints_365d=(cp.filed_on > cp.as_of - days(365)).sum(),
        fee_complaints_365d=((cp.filed_on > cp.as_of - days(365)) & (cp.category == "fees")).sum(),
        open_complaints=(cp.resolved_on.isnull() | (cp.resolved_on > cp.as_of)).sum(),
    )
    ct = ctx.windowed(ctx.contacts, "contact_date", RECENCY_CAP_DAYS)
    in_90 = ct.contact_date > ct.as_of - days(90)
    contacts = ct.group_by(["client_id", "as_of"]).aggregate(
        contacts_30d=(ct.contact_date > ct.as_of - days(30)).sum(),
        contacts_90d=in_90.sum(),
        reached_90d=(in_90 & ct.outcome.isin(["reached", "interested"])).sum(),
        last_contact=ct.contact_date.max(),
        **{f"contacts_{c}_90d": (in_90 & (ct.channel == c)).sum() for c in CHANNELS},
    )
    owners = ctx.clients.select("client_id", "branch_id")
    bs = ctx.windowed(ctx.satisfaction_surveys.join(owners, "client_id"), "surveyed_on", 365)
    branch_sat = bs.group_by(["branch_id", "as_of"]).aggregate(own_branch_satisfaction_365d=bs.score.mean())
    bc = ctx.windowed(ctx.contacts, "contact_date", 90)
    broker_contacts = bc.group_by(["broker_id", "as_of"]).aggregate(broker_contacts=bc.count())
    served = pop.group_by(["broker_id", "as_of"]).aggregate(served=pop.count())
    diligence = served.left_join(broker_contacts, ["broker_id", "as_of"]).select(
        "broker_id", "as_of",
        own_broker_contacts_per_client_90d=broker_contacts.broker_contacts.fill_null(0) / served.served)
    fc = ctx.windowed(ctx.complaints.filter(ctx.complaints.category == "fees"), "filed_on", 30)
    fee = fc.group_by(["branch_id", "as_of"]).aggregate(fee_complaints=fc.count())
    accounts = pop.group_by(["branch_id", "as_of"]).aggregate(accounts=pop.count())
    fee_rate = accounts.left_join(fee, ["branch_id", "as_of"]).select(
        "branch_id", "as_of",
        own_branch_fee_complaints_30d=fee.fee_complaints.fill_null(0) * 1000.0 / accounts.accounts)
    out = (
        pop.left_join(branch_sat, ["branch_id", "as_of"])
        .left_join(fee_rate, ["branch_id", "as_of"])
        .left_join(diligence, ["broker_id", "as_of"])
        .left_join(surveys, ["client_id", "as_of"])
        .left_join(reads, ["client_id", "as_of"])
        .left_join(complaints, ["client_id", "as_of"])
        .left_join(contacts, ["client_id", "as_of"])
    )
    tenure = out.as_of.delta(out.opened_on, unit="day")
    contacts_90d = out.contacts_90d.fill_null(0)
    return out.select(
        "client_id", "as_of",
        satisfaction_latest=out.satisfaction_latest.cast("float64").fill_null(NEUTRAL_SCORE),
        surveys_365d=out.surveys_365d.fill_null(0).cast("int64"),
        report_reads_30d=out.report_reads_30d.fill_null(0).cast("int64"),
        report_reads_90d=out.report_reads_90d.fill_null(0).cast("int64"),
        report_rating_avg_365d=out.report_rating_avg_365d.cast("float64").fill_null(NEUTRAL_SCORE),
        report_ratings_365d=out.report_ratings_365d.fill_null(0).cast("int64"),
        complaints_90d=out.complaints_90d.fill_null(0).cast("int64"),
        complaints_365d=out.complaints_365d.fill_null(0).cast("int64"),
        fee_complaints_365d=out.fee_complaints_365d.fill_null(0).cast("int64"),
        open_complaints=out.open_complaints.fill_null(0).cast("int64"),
        contacts_30d=out.contacts_30d.fill_null(0).cast("int64"),
        contacts_90d=contacts_90d.cast("int64"),
        **{f"contacts_{c}_90d": out[f"contacts_{c}_90d"].fill_null(0).cast("int64") for c in CHANNELS},
        contact_reached_share_90d=ibis.ifelse(contacts_90d > 0, out.reached_90d / contacts_90d, 0.0),
        own_branch_satisfaction_365d=out.own_branch_satisfaction_365d.cast("float64").fill_null(NEUTRAL_SCORE),
        own_broker_contacts_per_client_90d=out.own_broker_contacts_per_client_90d.cast("float64").fill_null(0.0),
        own_branch_fee_complaints_30d=out.own_branch_fee_complaints_30d.cast("float64").fill_null(0.0),
        days_since_last_contact=ibis.coalesce(
            out.as_of.delta(out.last_contact, unit="day"), ibis.least(tenure, RECENCY_CAP_DAYS)).cast("int64"),
    )
