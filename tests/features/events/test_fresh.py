"""The fresh indicators: windows hold exactly the rows dated inside them, whatever the order rows arrived in."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from features.events.fresh import ClientHistory, Complaint, Contact, TradeDay, Transfer, fresh_values

AS_OF = dt.date(2024, 12, 31)
OPENED = dt.date(2020, 3, 1)

days_back = st.integers(min_value=0, max_value=500)
transfers = st.lists(st.tuples(days_back, st.sampled_from(["in", "out"]),
                               st.integers(min_value=1, max_value=200_000)), max_size=40)
trades = st.lists(st.tuples(days_back, st.integers(min_value=500, max_value=50_000)), max_size=40)
contacts = st.lists(st.tuples(days_back, st.sampled_from(["phone", "wechat", "visit", "sms"]),
                              st.sampled_from(["reached", "no_answer", "interested", "declined"])), max_size=20)


def _history(rows_t, rows_x, rows_c, order: list[int]) -> ClientHistory:
    history = ClientHistory(opened_on=OPENED, assets=100_000.0)
    history.transfers = [Transfer(AS_OF - dt.timedelta(days=d), direction, float(amount)) for d, direction, amount
                         in rows_t]
    history.trades = [TradeDay(AS_OF - dt.timedelta(days=d), commission=5.0 + fen / 100, amount=fen * 10.0)
                      for d, fen in rows_x]
    history.contacts = [Contact(AS_OF - dt.timedelta(days=d), channel, outcome) for d, channel, outcome in rows_c]
    for name in ("transfers", "trades", "contacts"):  # arrival order: a permutation of the rows
        rows = getattr(history, name)
        setattr(history, name, [rows[k] for k in order if k < len(rows)])
    return history


def _expected_sum(rows_t, direction: str, window: int, as_of: dt.date) -> float:
    return sum(float(a) for d, dr, a in rows_t if dr == direction
               and as_of - dt.timedelta(days=window) < AS_OF - dt.timedelta(days=d) <= as_of)


@settings(max_examples=200, deadline=None)
@given(transfers, trades, contacts, st.permutations(list(range(40))), st.integers(min_value=0, max_value=120))
def test_windows_count_exactly_the_rows_inside_them_in_any_arrival_order(rows_t, rows_x, rows_c, order,
                                                                         later) -> None:
    as_of = AS_OF + dt.timedelta(days=later)  # time passes: rows leave their windows
    shuffled = fresh_values(_history(rows_t, rows_x, rows_c, order), as_of)
    in_order = fresh_values(_history(rows_t, rows_x, rows_c, list(range(40))), as_of)
    assert shuffled == in_order
    flow = shuffled["client_flow"]
    for w in (30, 90, 365):
        assert flow[f"inflow_{w}d"] == _expected_sum(rows_t, "in", w, as_of)
        assert flow[f"outflow_{w}d"] == _expected_sum(rows_t, "out", w, as_of)
    # A transfer exactly 90 days old is out of the 90-day window; one 89 days old is in.
    large = [d + later for d, dr, a in rows_t if dr == "out" and a >= 50_000]
    assert flow["large_withdrawals_90d"] == sum(1 for age in large if 0 <= age < 90)
    value = shuffled["client_value"]
    assert value["trade_count_90d"] == sum(1 for d, _ in rows_x if 0 <= d + later < 90)
    recent = [d + later for d, _, _ in rows_c if 0 <= d + later < 365]
    assert shuffled["client_feedback"]["days_since_last_contact"] == (min(recent) if recent else 365)
    assert shuffled["client_feedback"]["contacts_90d"] == sum(1 for d, _, _ in rows_c if 0 <= d + later < 90)


def test_a_withdrawal_91_days_old_no_longer_counts_in_90_days() -> None:
    history = ClientHistory(opened_on=OPENED, assets=0.0,
                            transfers=[Transfer(AS_OF - dt.timedelta(days=91), "out", 80_000.0)])
    values = fresh_values(history, AS_OF)["client_flow"]
    assert values["outflow_90d"] == 0.0 and values["large_withdrawals_90d"] == 0
    assert values["outflow_365d"] == 80_000.0
    assert fresh_values(history, AS_OF - dt.timedelta(days=2))["client_flow"]["large_withdrawals_90d"] == 1


def test_a_complaint_is_open_until_its_resolution_date_even_when_the_resolution_arrived_first() -> None:
    history = ClientHistory(opened_on=OPENED, complaints={"7": Complaint(AS_OF - dt.timedelta(days=10), "fees",
                                                                         AS_OF - dt.timedelta(days=3))})
    assert fresh_values(history, AS_OF - dt.timedelta(days=5))["client_feedback"]["open_complaints"] == 1
    assert fresh_values(history, AS_OF)["client_feedback"]["open_complaints"] == 0
    only_resolution = ClientHistory(opened_on=OPENED, complaints={"8": Complaint(None, None, AS_OF)})
    assert fresh_values(only_resolution, AS_OF)["client_feedback"]["open_complaints"] == 0
