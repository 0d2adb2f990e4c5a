"""Broker scorecards and branch rankings from the computed indicators, with the closed loop's figures."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import pandas as pd

from features.indicators.compute import view_path

BROKER_COLUMNS = {
    "broker_clients_served": "clients",
    "broker_new_clients_90d": "new 90d",
    "broker_assets_under_service": "assets (yuan)",
    "broker_commission_365d": "commission 365d (yuan)",
    "broker_net_inflow_90d": "net inflow 90d (yuan)",
    "broker_client_return_avg_12m": "client return 12m",
    "broker_client_churn_rate_12m": "churn 12m",
    "broker_satisfaction_avg_365d": "satisfaction",
    "broker_contacts_per_client_90d": "contacts/client 90d",
    "actions_recommended": "actions recommended",
    "actions_delivered": "actions delivered",
    "reach_rate": "reach rate",
    "at_risk_kept": "at-risk kept",
    "lost_won_back": "lost won back",
}
# The closed loop's figures per broker, written by the serving side (`crm queue plan`, `crm queue scorecards`)
# to CRM_HOME/loop/brokers.parquet; zero until actions have been planned.
LOOP_COLUMNS = ("actions_recommended", "actions_delivered", "reach_rate", "at_risk_clients", "at_risk_kept",
                "lost_clients", "lost_won_back")
BRANCH_COLUMNS = {
    "branch_rank_by_assets": "rank (assets)",
    "branch_clients": "clients",
    "branch_client_change_90d": "client change 90d",
    "branch_assets": "assets (yuan)",
    "branch_trade_amount_30d": "traded 30d (yuan)",
    "branch_market_share_30d": "market share 30d",
    "branch_commission_365d": "commission 365d (yuan)",
    "branch_net_flow_90d": "net flow 90d (yuan)",
    "branch_satisfaction_avg_365d": "satisfaction",
    "branch_complaints_90d": "complaints 90d",
    "branch_rank_by_commission_365d": "rank (commission)",
}


def _latest(offline_dir: Path, view: str) -> pd.DataFrame:
    path = view_path(offline_dir, view)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; run `crm features build` first")
    frame = pd.read_parquet(path)
    return frame[frame["as_of"] == frame["as_of"].max()].drop(columns=["event_timestamp", "created_timestamp"])


def broker_scorecards(offline_dir: Path, raw_dir: Path, loop_file: Path | None = None) -> pd.DataFrame:
    """Brokers with clients at the latest as-of date, best commission first, with their branch and, from
    ``loop_file`` when it exists, their closed-loop figures."""
    frame = _latest(offline_dir, "broker_management")
    brokers = pd.read_parquet(Path(raw_dir) / "brokers.parquet", columns=["broker_id", "branch_id"])
    frame = frame.merge(brokers, on="broker_id")
    loop = pd.read_parquet(loop_file) if loop_file is not None and Path(loop_file).exists() else None
    if loop is not None:
        frame = frame.merge(loop[["broker_id", *LOOP_COLUMNS]], on="broker_id", how="left")
    for column in LOOP_COLUMNS:
        if column not in frame:
            frame[column] = float("nan") if column == "reach_rate" else 0
            continue
        values = pd.to_numeric(frame[column], errors="coerce")  # an empty loop file has untyped columns
        frame[column] = values if column == "reach_rate" else values.fillna(0).astype("int64")
    frame = frame[frame["broker_clients_served"] > 0]
    return frame.sort_values("broker_commission_365d", ascending=False, ignore_index=True)


def branch_rankings(offline_dir: Path, raw_dir: Path) -> pd.DataFrame:
    frame = _latest(offline_dir, "branch")
    branches = pd.read_parquet(Path(raw_dir) / "branches.parquet", columns=["branch_id", "name", "city"])
    frame = frame.merge(branches, on="branch_id")
    return frame.sort_values("branch_rank_by_assets", ignore_index=True)


def records(frame: pd.DataFrame) -> list[dict]:
    out = frame.copy()
    out["as_of"] = out["as_of"].astype(str)
    return out.to_dict(orient="records")


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _table_html(frame: pd.DataFrame, columns: dict[str, str], keys: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in [*keys, *columns.values()])
    body = []
    for _, row in frame.iterrows():
        cells = [html.escape(str(row[k])) for k in keys]
        for column in columns:
            value = row[column]
            cells.append(f"{value:,.4f}" if isinstance(value, float) and abs(value) < 10 else
                         f"{value:,.0f}" if isinstance(value, float) else f"{value:,}")
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def write_report_html(kind: str, frame: pd.DataFrame, path: Path) -> Path:
    """HTML report with the table and plots; ``kind`` is 'brokers' or 'branches'."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = []
    if kind == "brokers":
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.scatter(frame["broker_commission_365d"] / 1e4, frame["broker_client_churn_rate_12m"],
                   s=10 + 40 * frame["broker_satisfaction_avg_365d"] / 5, alpha=0.6)
        ax.set_xlabel("commission over 365 days, 10 thousand yuan")
        ax.set_ylabel("clients' churn rate over 12 months")
        ax.set_title("Brokers: revenue against client churn (size: satisfaction)")
        plots.append(_png(fig))
        fig, ax = plt.subplots(figsize=(7, 3))
        ax.hist(frame["broker_contacts_per_client_90d"], bins=30)
        ax.set_xlabel("contacts per client over 90 days")
        ax.set_title("Broker diligence")
        plots.append(_png(fig))
        table = _table_html(frame, BROKER_COLUMNS, ["broker_id", "branch_id"])
    else:
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.barh(frame["name"], frame["branch_assets"] / 1e8)
        ax.invert_yaxis()
        ax.set_xlabel("client assets, 100 million yuan")
        ax.set_title("Branch ranking by client assets")
        plots.append(_png(fig))
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.barh(frame["name"], frame["branch_satisfaction_avg_365d"])
        ax.invert_yaxis()
        ax.set_xlim(1, 5)
        ax.set_title("Satisfaction by branch (1-5)")
        plots.append(_png(fig))
        table = _table_html(frame, BRANCH_COLUMNS, ["branch_id", "name", "city"])
    title = "Broker scorecards" if kind == "brokers" else "Branch rankings"
    as_of = str(frame["as_of"].iloc[0]) if len(frame) else "n/a"
    images = "".join(f"<img src='data:image/png;base64,{p}'/>" for p in plots)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>body{{font-family:"
            "sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 6px;"
            f"text-align:right}}</style></head><body><h1>{title}</h1><p>As of {as_of}.</p>{images}{table}"
            "</body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
