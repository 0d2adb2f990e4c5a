"""Label definitions on hand-built histories."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.labels import churn_outcomes, risk_outcomes, value_outcomes
from features.raw.store import write_table

T = pd.Timestamp


def _history(raw: Path) -> Path:
    month_ends = [T("2024-01-31"), T("2024-02-29"), T("2024-03-31"), T("2024-04-30"), T("2024-05-31"),
                  T("2024-06-30")]
    assets = {
        "A": [100_000, 60_000, 15_000, 15_000, 15_000, 15_000],  # moved 85,000 out: churned
        "B": [100_000, 60_000, 15_000, 15_000, 15_000, 15_000],  # lost it trading: not churned
        "C": [50_000, 50_000],  # closed on 2024-03-10: churned
        "D": [500, 500, 500, 500, 500, 500],  # below 1,000 yuan: not an active client
    }
    snaps = [{"client_id": c, "snapshot_date": month_ends[i], "cash": v, "market_value": 0.0, "total_assets": v}
             for c, values in assets.items() for i, v in enumerate(values)]
    write_table(raw, "account_snapshots", pd.DataFrame(snaps))
    write_table(raw, "cash_transfers", pd.DataFrame([
        {"transfer_id": 1, "client_id": "A", "transfer_date": T("2024-02-15"), "direction": "out", "amount": 40_000.0},
        {"transfer_id": 2, "client_id": "A", "transfer_date": T("2024-03-15"), "direction": "out", "amount": 45_000.0},
        {"transfer_id": 3, "client_id": "C", "transfer_date": T("2024-03-05"), "direction": "out", "amount": 50_000.0},
    ]))
    clients = pd.DataFrame([
        {"client_id": c, "client_type": "individual", "branch_id": "B1", "broker_id": "K1",
         "opened_on": T("2020-01-01"), "closed_on": T("2024-03-10") if c == "C" else pd.NaT,
         "commission_rate": 0.0003, "risk_level": level, "risk_assessed_on": assessed, "birth_year": 1980}
        for c, level, assessed in (("A", "C1", T("2023-01-01")), ("B", "C3", T("2023-01-01")),
                                   ("C", "C5", T("2023-01-01")), ("D", "C4", T("2024-02-15")))
    ]).astype({"birth_year": "Int64"})
    write_table(raw, "clients", clients)
    write_table(raw, "market_index", pd.DataFrame({
        "trade_date": pd.bdate_range("2024-01-02", "2025-02-28"), "close": 3000.0, "pct_change": 0.0,
        "amount": 1e9}))
    trades = [(1, "B", T("2024-01-31"), 20.0), (2, "B", T("2024-02-01"), 7.5), (3, "B", T("2025-01-31"), 5.0),
              (4, "B", T("2025-02-03"), 9.0)]
    write_table(raw, "trades", pd.DataFrame([
        {"trade_id": i, "client_id": c, "security_id": "600000", "trade_date": d, "side": "buy", "quantity": 100,
         "price": 10.0, "amount": 1000.0, "commission": fee, "stamp_duty": 0.0} for i, c, d, fee in trades]))
    return raw


def test_churn_is_a_fall_through_outflow_or_a_closure(tmp_path: Path) -> None:
    outcomes = churn_outcomes(_history(tmp_path / "raw"), horizon_days=90)
    jan = outcomes[outcomes["as_of"] == T("2024-01-31")].set_index("client_id")["churned"]
    assert jan.to_dict() == {"A": True, "B": False, "C": True}  # D was never active
    assert outcomes["as_of"].max() <= T("2024-06-30") - pd.Timedelta(days=90), "only complete horizons"


def test_value_is_the_next_twelve_months_commission(tmp_path: Path) -> None:
    outcomes = value_outcomes(_history(tmp_path / "raw"), horizon_months=12)
    b = outcomes[(outcomes["client_id"] == "B") & (outcomes["as_of"] == T("2024-01-31"))]
    # The trade on the as-of date and the one after the twelve months (2025-02-03) do not count.
    assert b["commission_next_12m"].item() == 7.5 + 5.0


def test_risk_class_is_the_questionnaire_known_then(tmp_path: Path) -> None:
    outcomes = risk_outcomes(_history(tmp_path / "raw"), [T("2024-01-31"), T("2024-02-29")])
    jan = outcomes[outcomes["as_of"] == T("2024-01-31")].set_index("client_id")["risk_class"].to_dict()
    assert jan == {"A": "conservative", "B": "balanced", "C": "aggressive"}  # D's questionnaire came later
    feb = outcomes[outcomes["as_of"] == T("2024-02-29")].set_index("client_id")["risk_class"].to_dict()
    assert feb["D"] == "aggressive"
