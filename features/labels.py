"""Outcome definitions read from observable raw data only (never from the ground truth).

Churn: a client active at an as-of month-end (total assets at least ``ACTIVE_ASSETS_MIN`` yuan) whose total
assets fall by at least 80% mostly through net outflow (transfers out exceed half of the fall), or whose
account closes, within the horizon after the as-of date.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
from pydantic import BaseModel, ConfigDict

ACTIVE_ASSETS_MIN = 1_000.0
CHURN_ASSET_FALL = 0.8
CHURN_OUTFLOW_SHARE_OF_FALL = 0.5


def churn_outcomes(raw_dir: Path, horizon_days: int = 90) -> pd.DataFrame:
    """One row per active client and month-end whose horizon ends inside the data: ``churned`` True/False."""
    raw = Path(raw_dir)
    return _query(
            f"""
            WITH snaps AS (SELECT * FROM read_parquet('{raw / "account_snapshots.parquet"}')),
                 ends AS (SELECT max(snapshot_date) AS last_date FROM snaps),
                 base AS (
                    SELECT s.client_id, s.snapshot_date AS as_of, s.total_assets AS assets
                    FROM snaps s, ends
                    WHERE s.total_assets >= {ACTIVE_ASSETS_MIN}
                      AND s.snapshot_date + INTERVAL {horizon_days} DAY <= ends.last_date
                 ),
                 monthly_out AS (
                    SELECT client_id, last_day(transfer_date) AS month_end,
                           sum(CASE WHEN direction = 'out' THEN amount ELSE -amount END) AS net_out
                    FROM read_parquet('{raw / "cash_transfers.parquet"}') GROUP BY 1, 2
                 ),
                 cum AS (
                    SELECT s.client_id, s.snapshot_date, s.total_assets,
                           sum(coalesce(m.net_out, 0)) OVER (PARTITION BY s.client_id ORDER BY s.snapshot_date)
                               AS cum_out
                    FROM snaps s LEFT JOIN monthly_out m
                      ON m.client_id = s.client_id AND m.month_end = s.snapshot_date
                 ),
                 later AS (
                    SELECT b.client_id, b.as_of, b.assets, l.total_assets, l.cum_out - c0.cum_out AS net_outflow
                    FROM base b
                    JOIN cum c0 ON c0.client_id = b.client_id AND c0.snapshot_date = b.as_of
                    JOIN cum l ON l.client_id = b.client_id AND l.snapshot_date > b.as_of
                     AND l.snapshot_date <= b.as_of + INTERVAL {horizon_days} DAY
                 ),
                 fell AS (
                    SELECT client_id, as_of, bool_or(
                        total_assets <= (1 - {CHURN_ASSET_FALL}) * assets
                        AND net_outflow >= {CHURN_OUTFLOW_SHARE_OF_FALL} * (assets - total_assets)) AS fell
                    FROM later GROUP BY client_id, as_of
                 ),
                 clients AS (SELECT client_id, closed_on FROM read_parquet('{raw / "clients.parquet"}'))
            SELECT b.client_id, b.as_of, b.assets,
                   coalesce(f.fell, FALSE)
                   OR (c.closed_on IS NOT NULL AND c.closed_on > b.as_of
                       AND c.closed_on <= b.as_of + INTERVAL {horizon_days} DAY) AS churned
            FROM base b
            LEFT JOIN fell f USING (client_id, as_of)
            LEFT JOIN clients c USING (client_id)
            ORDER BY b.as_of, b.client_id
            """
    )


def _query(sql: str) -> pd.DataFrame:
    con = duckdb.connect()
    try:
        return con.execute(sql).df()
    finally:
        con.close()


RISK_CLASSES = ("conservative", "balanced", "aggressive")
RISK_LEVEL_CLASS = {"C1": "conservative", "C2": "conservative", "C3": "balanced", "C4": "aggressive",
                    "C5": "aggressive"}


class Label(BaseModel):
    """A model's outcome, defined on observable data only."""

    model_config = ConfigDict(frozen=True)

    name: str
    model: str
    definition: str
    horizon: str
    unit: str


LABELS = (
    Label(name="churned_90d", model="churn", horizon="90 days after the as-of date", unit="flag",
          definition=f"A client active on the as-of date (total assets ≥ {ACTIVE_ASSETS_MIN:,.0f} yuan) whose total "
                     f"assets at a later month-end within the horizon are at most {1 - CHURN_ASSET_FALL:.0%} of the "
                     f"as-of assets with net transfers out of at least {CHURN_OUTFLOW_SHARE_OF_FALL:.0%} of the fall, "
                     "or whose account closes within the horizon."),
    Label(name="commission_next_12m", model="value", horizon="12 calendar months after the as-of date", unit="yuan",
          definition="Commission the client pays on trades dated after the as-of date and within the horizon, for "
                     "accounts open on the as-of date."),
    Label(name="risk_class", model="risk_profile", horizon="as-of date", unit="class",
          definition="The questionnaire level known on the as-of date mapped to conservative (C1–C2), balanced (C3) "
                     "or aggressive (C4–C5)."),
)


def value_outcomes(raw_dir: Path, horizon_months: int = 12) -> pd.DataFrame:
    """Commission in the months after each month-end for accounts open then; only fully observed horizons."""
    raw = Path(raw_dir)
    return _query(
            f"""
            WITH snaps AS (SELECT * FROM read_parquet('{raw / "account_snapshots.parquet"}')),
                 last AS (SELECT max(trade_date) AS d FROM read_parquet('{raw / "market_index.parquet"}')),
                 base AS (SELECT s.client_id, s.snapshot_date AS as_of FROM snaps s, last
                          WHERE s.snapshot_date + INTERVAL {horizon_months} MONTH <= last.d),
                 trades AS (SELECT client_id, trade_date, commission
                            FROM read_parquet('{raw / "trades.parquet"}'))
            SELECT b.client_id, b.as_of, coalesce(sum(t.commission), 0) AS commission_next_12m
            FROM base b LEFT JOIN trades t
              ON t.client_id = b.client_id AND t.trade_date > b.as_of
             AND t.trade_date <= b.as_of + INTERVAL {horizon_months} MONTH
            GROUP BY b.client_id, b.as_of
            ORDER BY b.as_of, b.client_id
            """
    )


def risk_outcomes(raw_dir: Path, as_of_dates: list) -> pd.DataFrame:
    """The questionnaire class and level of each open account at each as-of date, where a questionnaire was known
    then, with the questionnaire's age on that date."""
    clients = pd.read_parquet(Path(raw_dir) / "clients.parquet",
                              columns=["client_id", "opened_on", "closed_on", "risk_level", "risk_assessed_on"])
    for column in ("opened_on", "closed_on", "risk_assessed_on"):
        clients[column] = pd.to_datetime(clients[column])
    frames = []
    for as_of in as_of_dates:
        stamp = pd.Timestamp(as_of)
        open_ = (clients["opened_on"] <= stamp) & (clients["closed_on"].isna() | (clients["closed_on"] > stamp))
        known = clients["risk_assessed_on"] <= stamp
        chosen = clients[open_ & known]
        frames.append(pd.DataFrame({
            "client_id": chosen["client_id"].to_numpy(), "as_of": stamp,
            "risk_class": chosen["risk_level"].map(RISK_LEVEL_CLASS).to_numpy(),
            # The level itself (1-5) for an ordinal model, and how old the questionnaire was then.
            "risk_level": chosen["risk_level"].str[1:].astype(int).to_numpy(),
            "questionnaire_age_days": (stamp - chosen["risk_assessed_on"]).dt.days.to_numpy(),
        }))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["client_id", "as_of", "risk_class", "risk_level", "questionnaire_age_days"])
