"""The experiment report: per arm, clients, actions recommended and delivered, churn within 90 days and assets
kept, and each arm's difference from the holdout with a 95 % confidence interval.

Arms come from the audit log (each client's first decision: its arm and the date of the indicators it used) or
from any table of client, arm and start date (an action plan applied to part of a world). Churn is the observable
label of the churn model (assets down 80 % mostly through transfers out, or the account closed, within 90 days of
the start); assets kept is the client's total assets three month-ends after the start over those at the start
(capped at 3). Intervals are normal approximations: a difference of proportions for churn, Welch's for assets.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import sqlalchemy as sa

from features.labels import churn_outcomes
from service.db import decisions as decisions_table
from service.experiments import HOLDOUT
from service.outcomes import DONE_STATUSES

Z95 = 1.959964
KEPT_CAP = 3.0


def assignments_from_audit(engine: sa.Engine) -> pd.DataFrame:
    """Each client's first audited decision: client_id, arm, start (the indicators' date), recommended actions."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(decisions_table.c.client_id, decisions_table.c.decision_id,
                                      decisions_table.c.decided_at, decisions_table.c.response)
                            .order_by(decisions_table.c.decided_at)).all()
    seen: dict[str, dict] = {}
    recommended: dict[str, int] = {}
    decision_client: dict[str, str] = {}
    for client_id, decision_id, _, text in rows:
        response = json.loads(text)
        decision_client[decision_id] = client_id
        recommended[client_id] = recommended.get(client_id, 0) + len(response.get("next_best_actions") or [])
        if client_id not in seen and response.get("as_of") and not response.get("degraded"):
            seen[client_id] = {"client_id": client_id, "arm": response.get("arm", "champion"),
                               "start": pd.Timestamp(response["as_of"]).date()}
    frame = pd.DataFrame(list(seen.values()), columns=["client_id", "arm", "start"])
    frame["recommended"] = [recommended.get(c, 0) for c in frame["client_id"]]
    frame.attrs["decision_client"] = decision_client
    return frame


def delivered_by_client(outcomes: pd.DataFrame, decision_client: dict[str, str]) -> dict[str, int]:
    """Actions that reached the client (reached, declined or accepted), counted once per decision and action."""
    if outcomes.empty:
        return {}
    done = outcomes[outcomes["status"].isin(DONE_STATUSES)].drop_duplicates(["decision_id", "action"])
    counts: dict[str, int] = {}
    for decision_id in done["decision_id"]:
        client = decision_client.get(decision_id)
        if client is not None:
            counts[client] = counts.get(client, 0) + 1
    return counts


def observe(assignments: pd.DataFrame, raw_dir: Path, horizon_days: int = 90) -> pd.DataFrame:
    """The assignments with ``churned`` and ``assets_kept`` where the horizon is inside the data (else NaN)."""
    labels = churn_outcomes(raw_dir, horizon_days)[["client_id", "as_of", "assets", "churned"]]
    labels["as_of"] = pd.to_datetime(labels["as_of"]).dt.date
    con = duckdb.connect()
    try:
        snaps = con.execute(f"SELECT client_id, snapshot_date, total_assets FROM "
                            f"read_parquet('{Path(raw_dir) / 'account_snapshots.parquet'}')").df()
    finally:
        con.close()
    snaps["snapshot_date"] = pd.to_datetime(snaps["snapshot_date"]).dt.date
    month_ends = np.array(sorted(snaps["snapshot_date"].unique()))
    frame = assignments.copy()
    # The start is the last month-end on or before the indicators' date; the end three month-ends later.
    pos = np.searchsorted(month_ends, np.array(frame["start"].tolist(), dtype=object), side="right") - 1
    frame["month_end"] = [month_ends[p] if p >= 0 else None for p in pos]
    frame["end_month"] = [month_ends[p + 3] if p >= 0 and p + 3 < len(month_ends) else None for p in pos]
    frame = frame.merge(labels.rename(columns={"as_of": "month_end"}), on=["client_id", "month_end"], how="left")
    end = snaps.rename(columns={"snapshot_date": "end_month", "total_assets": "assets_end"})
    frame = frame.merge(end, on=["client_id", "end_month"], how="left")
    has_end = frame["end_month"].notna() & frame["assets"].notna()
    frame["assets_kept"] = np.where(has_end, np.clip(frame["assets_end"].fillna(0.0) / frame["assets"], 0, KEPT_CAP),
                                    np.nan)
    frame["churned"] = frame["churned"].astype("float64")
    return frame


def _diff_proportion(a: pd.Series, h: pd.Series) -> dict | None:
    a, h = a.dropna(), h.dropna()
    if len(a) == 0 or len(h) == 0:
        return None
    pa_, ph = a.mean(), h.mean()
    se = math.sqrt(pa_ * (1 - pa_) / len(a) + ph * (1 - ph) / len(h))
    d = pa_ - ph
    return {"difference": round(d, 5), "ci95": [round(d - Z95 * se, 5), round(d + Z95 * se, 5)]}


def _diff_mean(a: pd.Series, h: pd.Series) -> dict | None:
    a, h = a.dropna(), h.dropna()
    if len(a) < 2 or len(h) < 2:
        return None
    se = math.sqrt(a.var(ddof=1) / len(a) + h.var(ddof=1) / len(h))
    d = a.mean() - h.mean()
    return {"difference": round(d, 5), "ci95": [round(d - Z95 * se, 5), round(d + Z95 * se, 5)]}


def report(observed: pd.DataFrame, delivered: dict[str, int] | None = None) -> dict:
    """Per arm figures and differences from the holdout; ``observed`` as :func:`observe` returns it."""
    delivered = delivered or {}
    arms = {}
    holdout = observed[observed["arm"] == HOLDOUT]
    for arm, part in observed.groupby("arm", sort=True):
        churn = part["churned"].dropna()
        kept = part["assets_kept"].dropna()
        figures = {
            "clients": len(part),
            "actions_recommended": int(part["recommended"].sum()) if "recommended" in part else 0,
            "actions_delivered": int(sum(delivered.get(c, 0) for c in part["client_id"])),
            "clients_observed": len(churn),
            "churn_90d": round(float(churn.mean()), 5) if len(churn) else None,
            "assets_kept": round(float(kept.mean()), 5) if len(kept) else None,
        }
        if arm != HOLDOUT:
            figures["vs_holdout"] = {"churn_90d": _diff_proportion(part["churned"], holdout["churned"]),
                                     "assets_kept": _diff_mean(part["assets_kept"], holdout["assets_kept"])}
        arms[str(arm)] = figures
    return {"arms": arms, "clients": len(observed),
            "note": "differences are arm minus holdout; 95% normal-approximation intervals; churn and assets kept "
                    "are observed only where 90 days have passed inside the data"}
