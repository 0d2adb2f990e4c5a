"""Every indicator of the tiny hand-made brokerage equals the value worked out by hand from its story."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.indicators.compute import catalog, compute_frames, views
from features.indicators.context import duckdb_context
from tests.features.indicators.tiny_world import DAYS, S2_LISTED, close, index_close, trade_frame, write_tiny_world

AS_OF = dt.date(2024, 3, 31)
EARLIER = dt.date(2024, 2, 29)


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    raw = write_tiny_world(tmp_path_factory.mktemp("tiny") / "raw")
    con, ctx = duckdb_context(raw, [EARLIER, AS_OF])
    return compute_frames(con, ctx)


def row(frames: dict[str, pd.DataFrame], view: str, key: str, as_of: dt.date = AS_OF) -> dict:
    frame = frames[view]
    key_column = frame.columns[0]
    match = frame[(frame[key_column] == key) & (frame["as_of"] == as_of)]
    assert len(match) == 1, f"{view} has {len(match)} rows for {key} at {as_of}"
    return match.iloc[0].to_dict()


def snapshot(client: str, day: dt.date) -> dict:
    from tests.features.indicators.tiny_world import _ledgers

    snaps, _ = _ledgers()
    return snaps[(snaps.client_id == client) & (snaps.snapshot_date == pd.Timestamp(day))].iloc[0].to_dict()


def amount(trade_id: int) -> float:
    return float(trade_frame().set_index("trade_id").loc[trade_id, "amount"])


def commission(*trade_ids: int) -> float:
    return float(trade_frame().set_index("trade_id").loc[list(trade_ids), "commission"].sum())


def approx(value: float) -> object:
    return pytest.approx(value, rel=1e-9, abs=1e-9)


def test_every_catalogued_indicator_is_computed_for_every_view(frames: dict[str, pd.DataFrame]) -> None:
    for view in views():
        assert list(frames[view.name].columns[2:]) == [i.name for i in view.indicators]
    assert len(catalog()) >= 60
    assert len({i.name for i in catalog()}) == len(catalog()), "indicator names must be unique"


def test_population_is_the_accounts_open_on_each_date(frames: dict[str, pd.DataFrame]) -> None:
    category = frames["client_category"]
    assert sorted(category[category.as_of == AS_OF].client_id) == ["C1", "C2"]  # C3 closed on 03-20
    assert sorted(category[category.as_of == EARLIER].client_id) == ["C1", "C2", "C3"]


def test_client_category(frames: dict[str, pd.DataFrame]) -> None:
    c1 = row(frames, "client_category", "C1")
    end = snapshot("C1", AS_OF)
    mv = {"600001": 3000 * 10.0, "300001": round(1500 * close("300001", DAYS[-1]), 2),
          "600002": round(1000 * close("600002", DAYS[-1]), 2)}
    weights = {k: v / sum(mv.values()) for k, v in mv.items()}
    assert c1["client_type"] == "individual"
    assert c1["total_assets"] == approx(end["total_assets"])
    assert c1["asset_tier"] == ("mass_affluent" if 100_000 <= end["total_assets"] < 1e6 else "retail")
    assert c1["stated_risk_level"] == 3
    assert c1["risk_assessment_age_days"] == (AS_OF - dt.date(2022, 1, 1)).days == 820
    assert c1["questionnaire_expired"]
    assert c1["growth_board_share"] == approx(weights["300001"])
    assert c1["st_share"] == approx(weights["600002"])
    assert c1["holdings_concentration_hhi"] == approx(sum(w * w for w in weights.values()))

    def volatility(security: str) -> float:
        days = [d for d in DAYS if d > AS_OF - dt.timedelta(days=90) and (security != "300001" or d >= S2_LISTED)]
        closes = [close(security, d) for d in days]
        previous = [15.0 if (security == "300001" and d == S2_LISTED) else close(security, DAYS[DAYS.index(d) - 1])
                    for d in days]
        return float(np.std(np.array(closes) / np.array(previous) - 1, ddof=1))

    assert c1["holdings_volatility_90d"] == approx(sum(weights[s] * volatility(s) for s in weights))

    # Stock selection: buys 1 (S3, 01-03), 3 (S2, 01-16) and 5 (S2, 02-01) have a finished 20-day horizon.
    def excess(security: str, day: dt.date) -> float:
        later = DAYS[DAYS.index(day) + 20]
        return close(security, later) / close(security, day) - index_close(later) / index_close(day)

    scored = [(1, "600002", dt.date(2024, 1, 3)), (3, "300001", dt.date(2024, 1, 16)),
              (5, "300001", dt.date(2024, 2, 1))]
    expected = sum(excess(s, d) * amount(t) for t, s, d in scored) / sum(amount(t) for t, _, _ in scored)
    assert c1["stock_selection_score_365d"] == approx(expected)

    # Timing: net buying per trading day (+1 all buys, -1 all sells) against the next 10 days of the index.
    days = [(dt.date(2024, 1, 3), 1.0), (dt.date(2024, 1, 16), 1.0), (dt.date(2024, 1, 29), -1.0),
            (dt.date(2024, 2, 1), 1.0), (dt.date(2024, 3, 4), -1.0)]  # 03-25's horizon ends after the as-of date
    net = np.array([n for _, n in days])
    forward = np.array([index_close(DAYS[DAYS.index(d) + 10]) / index_close(d) - 1 for d, _ in days])
    assert c1["market_timing_score_365d"] == approx(float(np.corrcoef(net, forward)[0, 1]))

    # One buy in four (S2 on 01-16) came two days after reading report R1 on S2.
    assert c1["informed_buy_share_365d"] == approx(0.25)
    assert c1["trading_ability_class"] == "information_dependent"

    c2 = row(frames, "client_category", "C2")
    assert c2["trading_ability_class"] == "insufficient_history"
    assert c2["stock_selection_score_365d"] == 0.0 and c2["market_timing_score_365d"] == 0.0
    assert c2["questionnaire_expired"] is False or not c2["questionnaire_expired"]
    assert c2["holdings_concentration_hhi"] == 0.0  # nothing held at 03-31
    assert c2["asset_tier"] == "retail"


def test_client_value(frames: dict[str, pd.DataFrame]) -> None:
    c1 = row(frames, "client_value", "C1")
    assert c1["commission_30d"] == approx(commission(7, 8))
    assert c1["commission_90d"] == approx(commission(1, 3, 4, 5, 7, 8))
    assert c1["commission_365d"] == approx(commission(1, 3, 4, 5, 7, 8))
    assert (c1["trade_count_30d"], c1["trade_count_90d"], c1["trade_count_365d"]) == (2, 6, 6)
    assert c1["trade_amount_90d"] == approx(sum(amount(t) for t in (1, 3, 4, 5, 7, 8)))
    assert c1["active_month_share_365d"] == approx(3 / 12)
    assert c1["tenure_days"] == (AS_OF - dt.date(2020, 1, 1)).days
    start, end = 100_000.0, snapshot("C1", AS_OF)["total_assets"]
    net_in = 30_000 - 60_000
    dietz = (end - start - net_in) / (start + net_in / 2)
    assert c1["return_3m"] == approx(dietz)
    assert c1["return_6m"] == approx(dietz)  # the history starts at the 2023-12-31 opening snapshot
    assert c1["return_12m"] == approx(dietz)
    assert c1["asset_growth_12m"] == approx(end / start - 1)
    # The index from the last close on or before the window's first snapshot (2023-12-31) to the as-of snapshot.
    market = index_close(DAYS[-1]) / index_close(DAYS[0]) - 1
    assert c1["market_return_6m"] == approx(market)
    in_stocks = snapshot("C1", AS_OF)["market_value"] / end
    assert c1["excess_return_6m"] == approx(dietz - in_stocks * market)
    # C1 pays 0.03% where the market's rate is 0.02%.
    assert c1["commission_overpaid_90d"] == approx(0.0001 * sum(amount(t) for t in (1, 3, 4, 5, 7, 8)))

    c2 = row(frames, "client_value", "C2")
    first, last = snapshot("C2", EARLIER)["total_assets"], snapshot("C2", AS_OF)["total_assets"]
    assert c2["return_3m"] == approx((last - first) / first)  # the 5,000 deposit came before the first snapshot
    assert c2["active_month_share_365d"] == approx(2 / 2)  # opened 50 days ago, traded in Feb and Mar
    assert c2["commission_30d"] == approx(commission(9))


def test_account_info(frames: dict[str, pd.DataFrame]) -> None:
    c1 = row(frames, "account_info", "C1")
    end = snapshot("C1", AS_OF)
    mv = {"600001": 30_000.0, "300001": round(1500 * close("300001", DAYS[-1]), 2),
          "600002": round(1000 * close("600002", DAYS[-1]), 2)}
    total_mv = sum(mv.values())
    ages = {"600001": (AS_OF - dt.date(2023, 6, 30)).days, "300001": (AS_OF - dt.date(2024, 1, 16)).days,
            "600002": (AS_OF - dt.date(2024, 3, 25)).days}
    assert c1["holding_period_days_avg"] == approx(sum(mv[s] / total_mv * ages[s] for s in mv))
    assert c1["long_holding_share"] == approx(mv["600001"] / total_mv)
    assert c1["top_industry"] == max(zip(mv.values(), ("banks", "electronics", "steel"), strict=True))[1]
    assert c1["top_industry_share"] == approx(max(mv.values()) / total_mv)
    assert (c1["industry_count"], c1["positions_count"]) == (3, 3)
    assert c1["securitisation_ratio"] == approx(end["market_value"] / end["total_assets"])
    assert c1["cash_balance"] == approx(end["cash"])
    assert c1["market_value"] == approx(end["market_value"])
    average_assets = np.mean([snapshot("C1", d)["total_assets"] for d in
                              (dt.date(2023, 12, 31), dt.date(2024, 1, 31), EARLIER, AS_OF)])
    assert c1["asset_turnover_365d"] == approx(sum(amount(t) for t in (1, 3, 4, 5, 7, 8)) / average_assets)
    bought = sum(amount(t) for t in (1, 3, 5, 8))
    assert c1["new_stock_buy_share_365d"] == approx((amount(3) + amount(5)) / bought)
    assert c1["sub_new_stock_buy_share_365d"] == approx((amount(3) + amount(5)) / bought)
    assert (c1["ipo_subscriptions_365d"], c1["ipo_allotments_365d"]) == (1, 0)
    assert c1["commission_rate"] == 0.0003
    assert c1["growth_board_buy_share_365d"] == approx((amount(3) + amount(5)) / bought)  # S2 is on ChiNext
    assert c1["st_buy_share_365d"] == approx((amount(1) + amount(8)) / bought)  # S3 is ST

    c2 = row(frames, "account_info", "C2")
    assert (c2["positions_count"], c2["top_industry"], c2["holding_period_days_avg"]) == (0, "none", 0.0)
    assert c2["new_stock_buy_share_365d"] == 0.0


def test_client_feedback(frames: dict[str, pd.DataFrame]) -> None:
    c1 = row(frames, "client_feedback", "C1")
    assert (c1["satisfaction_latest"], c1["surveys_365d"]) == (2.0, 2)
    assert (c1["report_reads_30d"], c1["report_reads_90d"]) == (1, 2)
    assert (c1["report_rating_avg_365d"], c1["report_ratings_365d"]) == (5.0, 1)
    assert (c1["complaints_90d"], c1["complaints_365d"], c1["open_complaints"]) == (1, 1, 1)
    assert c1["fee_complaints_365d"] == 1
    assert c1["contacts_90d"] == 3
    assert c1["contacts_30d"] == 2  # 03-10 and 03-20
    assert (c1["contacts_phone_90d"], c1["contacts_wechat_90d"], c1["contacts_visit_90d"],
            c1["contacts_sms_90d"]) == (1, 1, 1, 0)
    assert c1["contact_reached_share_90d"] == approx(2 / 3)
    assert c1["days_since_last_contact"] == 11
    assert c1["own_branch_satisfaction_365d"] == approx((4 + 3 + 2) / 3)
    assert c1["own_broker_contacts_per_client_90d"] == approx(3 / 2)  # K1: three contacts, clients C1 and C2
    assert c1["own_branch_fee_complaints_30d"] == 0.0  # C1's fee complaint was filed on 02-15
    earlier = row(frames, "client_feedback", "C1", EARLIER)
    assert earlier["own_branch_fee_complaints_30d"] == approx(1000 / 3)  # one in 30 days; C1, C2, C3 open

    c2 = row(frames, "client_feedback", "C2")
    assert (c2["satisfaction_latest"], c2["surveys_365d"]) == (3.0, 0)  # never surveyed: neutral
    assert (c2["report_reads_30d"], c2["report_rating_avg_365d"]) == (1, 2.0)
    assert (c2["complaints_90d"], c2["open_complaints"]) == (1, 0)  # resolved on 03-05
    assert c2["fee_complaints_365d"] == 0  # a service complaint
    assert (c2["contacts_90d"], c2["contact_reached_share_90d"]) == (0, 0.0)
    assert c2["contacts_30d"] == 0
    assert c2["days_since_last_contact"] == (AS_OF - dt.date(2024, 2, 10)).days  # never contacted: tenure

    # On 02-29 C1's complaint was open too, and only one survey (score 4) had been answered.
    earlier = row(frames, "client_feedback", "C1", EARLIER)
    assert (earlier["satisfaction_latest"], earlier["open_complaints"], earlier["report_reads_30d"]) == (4.0, 1, 0)


def test_client_flow(frames: dict[str, pd.DataFrame]) -> None:
    c1 = row(frames, "client_flow", "C1")
    assert (c1["inflow_30d"], c1["inflow_90d"], c1["inflow_365d"]) == (0.0, 30_000.0, 30_000.0)
    assert (c1["outflow_30d"], c1["outflow_90d"], c1["outflow_365d"]) == (60_000.0, 60_000.0, 60_000.0)
    assert (c1["net_flow_30d"], c1["net_flow_90d"], c1["net_flow_365d"]) == (-60_000.0, -30_000.0, -30_000.0)
    assert c1["large_withdrawals_90d"] == 1
    end = snapshot("C1", AS_OF)["total_assets"]
    assert c1["outflow_share_90d"] == approx(60_000 / (end + 60_000))
    assert c1["asset_change_3m"] == approx(end / 100_000 - 1)
    assert (c1["days_since_last_trade"], c1["days_since_last_transfer"]) == (6, 16)
    branch_assets = end + snapshot("C2", AS_OF)["total_assets"]
    c3_out = trade_frame().query("trade_id == 2").eval("amount - commission - stamp_duty").iloc[0]
    moved = 60_000 + c3_out
    assert c1["own_branch_outflow_share_90d"] == approx(moved / (branch_assets + moved))
    assert not c1["dormant_90d"]

    c2 = row(frames, "client_flow", "C2")
    assert (c2["inflow_90d"], c2["days_since_last_trade"], c2["days_since_last_transfer"]) == (5_000.0, 3, 50)


def test_broker_management(frames: dict[str, pd.DataFrame]) -> None:
    k1 = row(frames, "broker_management", "K1")
    totals = snapshot("C1", AS_OF)["total_assets"] + snapshot("C2", AS_OF)["total_assets"]
    assert (k1["broker_clients_served"], k1["broker_new_clients_90d"]) == (2, 1)
    assert k1["broker_assets_under_service"] == approx(totals)
    assert k1["broker_commission_90d"] == approx(commission(1, 3, 4, 5, 6, 7, 8, 9))
    assert k1["broker_net_inflow_90d"] == approx(30_000 + 5_000 - 60_000)
    value = frames["client_value"]
    returns = value[(value.as_of == AS_OF)].set_index("client_id")["return_12m"]
    assert k1["broker_client_return_avg_12m"] == approx((returns["C1"] + returns["C2"]) / 2)
    assert k1["broker_client_churn_rate_12m"] == 0.0  # C1 was the only client active on 2023-12-31 and stayed
    assert k1["broker_satisfaction_avg_365d"] == approx((4 + 2) / 2)
    assert (k1["broker_contacts_90d"], k1["broker_contacts_per_client_90d"]) == (3, 1.5)

    k2 = row(frames, "broker_management", "K2")
    assert (k2["broker_clients_served"], k2["broker_assets_under_service"]) == (0, 0.0)
    assert k2["broker_client_churn_rate_12m"] == 1.0  # C3 closed its account
    assert k2["broker_commission_365d"] == approx(commission(2))  # revenue of a client who left still counts
    assert (k2["broker_contacts_90d"], k2["broker_contacts_per_client_90d"]) == (1, 0.0)


def test_branch(frames: dict[str, pd.DataFrame]) -> None:
    b1 = row(frames, "branch", "B1")
    in_30 = [7, 8, 9]
    market_30d = 1e9 * len([d for d in DAYS if d > AS_OF - dt.timedelta(days=30)])
    assert b1["branch_trade_amount_30d"] == approx(sum(amount(t) for t in in_30))
    assert b1["branch_trade_amount_365d"] == approx(sum(amount(t) for t in range(1, 10)))
    assert b1["branch_market_share_30d"] == approx(sum(amount(t) for t in in_30) / (2 * market_30d))
    assert b1["branch_commission_365d"] == approx(commission(*range(1, 10)))
    assert (b1["branch_clients"], b1["branch_new_clients_90d"], b1["branch_closed_clients_90d"],
            b1["branch_client_change_90d"]) == (2, 1, 1, 0)
    assert b1["branch_assets"] == approx(snapshot("C1", AS_OF)["total_assets"] + snapshot("C2", AS_OF)["total_assets"])
    c3_out = trade_frame().query("trade_id == 2").eval("amount - commission - stamp_duty").iloc[0]
    assert b1["branch_net_flow_90d"] == approx(30_000 + 5_000 - 60_000 - c3_out)
    assert b1["branch_satisfaction_avg_365d"] == approx((4 + 3 + 2) / 3)
    assert b1["branch_complaints_90d"] == 2
    assert (b1["branch_rank_by_assets"], b1["branch_rank_by_commission_365d"],
            b1["branch_rank_by_market_share_30d"]) == (1, 1, 1)


def test_ratios_stay_in_unit_interval_and_nothing_is_missing(frames: dict[str, pd.DataFrame]) -> None:
    for view in views():
        frame = frames[view.name]
        for ind in view.indicators:
            assert frame[ind.name].notna().all(), f"{ind.name} has missing values"
            if ind.unit == "ratio 0-1":
                assert frame[ind.name].between(0, 1).all(), ind.name


def test_indicators_at_an_earlier_date_ignore_later_data(frames: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    c1 = row(frames, "client_value", "C1", EARLIER)
    assert c1["trade_count_365d"] == 4  # trades 1, 3, 4, 5: not 7 and 8 from March
    assert row(frames, "client_flow", "C1", EARLIER)["outflow_365d"] == 0.0
