"""Outcome definitions read from observable raw data only (never from the ground truth).

Churn: a client active at an as-of month-end (total assets at least ``ACTIVE_ASSETS_MIN`` yuan) whose total
assets fall by at least 80% mostly through net outflow (transfers out exceed half of the fall), or whose
account closes, within the horizon after the as-of date.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

ACTIVE_ASSETS_MIN = 1_000.0
CHURN_ASSET_FALL = 0.8
CHURN_OUTFLOW_SHARE_OF_FALL = 0.5


def churn_outcomes(raw_dir: Path, horizon_days: int = 90) -> pd.DataFrame:
    """One row per active client and month-end whose horizon ends inside the data: ``churned`` True/False."""
    raw = Path(raw_dir)
    con = duckdb.connect()
    try:
        return con.execute(
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
        ).df()
    finally:
        con.close()
