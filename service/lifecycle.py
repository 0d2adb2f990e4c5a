"""The client's lifecycle stage, and the register of departures that keeps why each lost client left.

Stages: ``new`` (opened within 90 days), ``active``, ``at_risk`` (an active client in the high churn band),
``dormant`` (no trade and no transfer for 90 days, assets left), ``lost`` (assets below the active threshold after
having been active, or the account closed). Churn scoring applies to active and at-risk clients only: a new,
dormant or lost client's decision carries no churn score and its rules read the churn terms' defaults. For a lost
client the decision gives the cause recorded when they left — the churn model's likely cause at their last active
month-end — and the rules choose win-back actions by that cause. A closed account has no indicators any more: its
decision comes from the register alone (stage ``lost``, the recorded cause, win-back actions).

The register (``$CRM_HOME/lifecycle/departures.parquet``, written by ``crm lifecycle record``) holds, for every
client who was active at some month-end and is not any more, that month-end, the cause then and the closing date.
Without it a client is taken as having been active when money left the account in the last 365 days.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from features.labels import ACTIVE_ASSETS_MIN  # yuan: the churn label's threshold of an active client

NEW_CLIENT_DAYS = 90
STAGES = ("new", "active", "at_risk", "dormant", "lost")
CHURN_SCORED_STAGES = ("active", "at_risk")  # the stages the churn score speaks for
REGISTER_FILE = "departures.parquet"


@dataclass(frozen=True)
class Departure:
    """Why and when a client stopped being active."""

    last_active: str  # the last month-end the client held at least ACTIVE_ASSETS_MIN yuan (ISO date)
    cause: str  # the churn model's likely cause at that month-end
    closed_on: str | None  # the account's closing date, if it was closed

    @property
    def closed(self) -> bool:
        return self.closed_on is not None


class Register:
    """Departures by client id, loaded from the register file (empty when it has not been recorded)."""

    def __init__(self, departures: dict[str, Departure] | None = None, mtime: float | None = None) -> None:
        self.departures = departures or {}
        self.mtime = mtime

    def get(self, client_id: str) -> Departure | None:
        return self.departures.get(client_id)

    def __len__(self) -> int:
        return len(self.departures)

    def closed(self) -> dict[str, Departure]:
        """The departures of closed accounts (clients the online store has no row for any more)."""
        return {c: d for c, d in self.departures.items() if d.closed}

    def closed_beyond(self, client_ids) -> list[tuple[str, Departure]]:
        """The closed accounts missing from ``client_ids`` (the clients with indicators), by client id: they are
        decided from the register alone, for win-back."""
        present = set(client_ids)
        return sorted((c, d) for c, d in self.closed().items() if c not in present)

    @classmethod
    def load(cls, folder: Path) -> Register:
        path = folder / REGISTER_FILE
        try:
            mtime = os.stat(path).st_mtime
        except FileNotFoundError:
            return cls()
        frame = pq.read_table(path).to_pandas()
        departures = {
            c: Departure(str(last), cause, None if closed is None or pd.isna(closed) else str(closed))
            for c, last, cause, closed in zip(frame["client_id"], frame["last_active"], frame["cause"],
                                              frame["closed_on"], strict=True)}
        return cls(departures, mtime)

    def stale(self, folder: Path) -> bool:
        try:
            return os.stat(folder / REGISTER_FILE).st_mtime != self.mtime
        except FileNotFoundError:
            return self.mtime is not None


def stage(total_assets: float, tenure_days: int, dormant_90d: bool, outflow_365d: float, churn_band: str,
          departure: Departure | None) -> str:
    """The lifecycle stage from the client's latest indicators, churn band and recorded departure."""
    if departure is not None and departure.closed:
        return "lost"
    if total_assets < ACTIVE_ASSETS_MIN and (departure is not None or outflow_365d >= ACTIVE_ASSETS_MIN):
        return "lost"
    if tenure_days < NEW_CLIENT_DAYS:
        return "new"
    if dormant_90d and total_assets >= ACTIVE_ASSETS_MIN:
        return "dormant"
    if churn_band == "high":
        return "at_risk"
    return "active"


def record_departures(offline_dir: Path, raw_dir: Path, score_causes, out_dir: Path) -> dict:
    """Write the register: every client active at some month-end of the offline tables and below the threshold
    (or closed) at the latest, with its last active month-end and the likely cause then.

    ``score_causes(frame) -> Series`` gives the churn model's likely cause for rows of indicator values (the
    caller passes the champion's), so this module needs no model of its own.
    """
    assets = pq.read_table(offline_dir / "client_category.parquet", columns=["client_id", "as_of", "total_assets"]
                           ).to_pandas()
    latest_as_of = assets["as_of"].max()
    clients = pq.read_table(raw_dir / "clients.parquet", columns=["client_id", "closed_on"]).to_pandas()
    closed = clients.dropna(subset=["closed_on"]).set_index("client_id")["closed_on"]
    active_rows = assets[assets["total_assets"] >= ACTIVE_ASSETS_MIN]
    last_active = active_rows.groupby("client_id")["as_of"].max()
    now = assets[assets["as_of"] == latest_as_of].set_index("client_id")["total_assets"]
    gone = [c for c, last in last_active.items()
            if c in closed.index or (last < latest_as_of and now.get(c, 0.0) < ACTIVE_ASSETS_MIN)]
    frame = pd.DataFrame({"client_id": gone, "last_active": [last_active[c] for c in gone]})
    frame["closed_on"] = [closed.get(c) for c in gone]
    frame["cause"] = score_causes(frame[["client_id", "last_active"]]) if len(frame) else []
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f"{REGISTER_FILE}.tmp"
    frame["last_active"] = [d.isoformat() if isinstance(d, dt.date) else str(d)[:10] for d in frame["last_active"]]
    frame["closed_on"] = [None if d is None or pd.isna(d) else str(d)[:10] for d in frame["closed_on"]]
    frame[["client_id", "last_active", "cause", "closed_on"]].to_parquet(tmp, index=False)
    tmp.replace(out_dir / REGISTER_FILE)
    causes = frame["cause"].value_counts().to_dict() if len(frame) else {}
    return {"departed": len(frame), "closed": int(frame["closed_on"].notna().sum()) if len(frame) else 0,
            "by_cause": {str(k): int(v) for k, v in causes.items()}, "as_of": str(latest_as_of)[:10]}


def stages_of(frame: pd.DataFrame, bands: pd.Series, register: Register | None) -> list[str]:
    """The stage of every row of a population frame (indicator columns by name, indexed by client id)."""
    get = register.get if register is not None else (lambda _c: None)

    def column(name: str) -> np.ndarray:  # as floats: numpy leaves the missing values of an object column alone
        return frame[name].to_numpy(dtype=np.float64) if name in frame else np.zeros(len(frame))

    # Missing values replaced column by column (numpy's call per value cost more than the rest of the stage).
    assets, tenure = np.nan_to_num(column("total_assets")), np.nan_to_num(column("tenure_days"), nan=365)
    dormant, outflow = column("dormant_90d"), np.nan_to_num(column("outflow_365d"))
    return [stage(float(a), int(t), bool(d), float(o), str(b), get(c))
            for c, a, t, d, o, b in zip(frame.index, assets, tenure, dormant, outflow, bands, strict=True)]
