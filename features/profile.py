"""The data profile: row counts and the realism figures of the raw data, as text, JSON and HTML with plots.

This is evaluation code: where the raw data is a generated world, it also reads the world's ground truth to
say how well the true churn probabilities separate realised churn (the best any model could do).
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from pydantic import BaseModel

from features.labels import ACTIVE_ASSETS_MIN, churn_outcomes
from features.metrics import auc
from features.raw.store import row_counts
from features.synthetic.ground_truth import read_truth_table, truth_matches

WORLD_MANIFEST = "_world.json"


class RealismFigure(BaseModel):
    """One realism figure with the range a realistic brokerage falls in."""

    name: str
    value: float | None
    low: float | None
    high: float | None
    meaning: str

    @property
    def within(self) -> bool | None:
        if self.value is None:
            return None
        return (self.low is None or self.value >= self.low) and (self.high is None or self.value <= self.high)


class CampaignEffect(BaseModel):
    """Retention over 90 days of the clients a past randomized campaign gave one action, against the active
    clients it left out, pooled over the campaigns whose 90 days are inside the data."""

    action: str
    treated: int
    untreated: int
    treated_retention: float
    untreated_retention: float
    effect: float  # treated minus untreated retention
    low: float  # 95% interval of the effect
    high: float


# Shares of churn events by cause a brokerage sees: most leave for a competitor.
CAUSE_RANGES = {"competitor": (0.45, 0.65), "service": (0.20, 0.35), "poor_trading": (0.10, 0.25)}


class Profile(BaseModel):
    rows: dict[str, int]
    source: str
    figures: list[RealismFigure]
    cause_mix: dict[str, float] | None = None
    campaign_effects: list[CampaignEffect] = []

    def as_json(self) -> dict:
        return {
            "source": self.source,
            "rows": self.rows,
            "realism": {
                f.name: {"value": f.value, "low": f.low, "high": f.high, "within": f.within, "meaning": f.meaning}
                for f in self.figures
            },
            "cause_mix": self.cause_mix,
            "campaign_effects": [e.model_dump() for e in self.campaign_effects],
        }


def _manifest(raw_dir: Path) -> dict | None:
    path = raw_dir / WORLD_MANIFEST
    return json.loads(path.read_text()) if path.exists() else None


def build_profile(raw_dir: Path, truth_dir: Path | None = None) -> Profile:
    raw_dir = Path(raw_dir)
    rows = row_counts(raw_dir)
    missing = [name for name in ("clients", "trades", "cash_transfers", "account_snapshots") if name not in rows]
    if missing:
        raise FileNotFoundError(
            f"raw tables {', '.join(missing)} not found in {raw_dir}; run `crm data generate` or "
            "`crm data import DIR` first"
        )
    manifest = _manifest(raw_dir)
    con = duckdb.connect()
    p = {name: f"read_parquet('{raw_dir / (name + '.parquet')}')" for name in rows}
    try:
        last_date = con.execute(f"SELECT max(snapshot_date) FROM {p['account_snapshots']}").fetchone()[0]
        top5 = con.execute(
            f"""SELECT sum(total_assets) FILTER (WHERE r <= 0.05) / sum(total_assets) FROM (
                  SELECT total_assets, percent_rank() OVER (ORDER BY total_assets DESC) AS r
                  FROM {p['account_snapshots']} WHERE snapshot_date = ? AND total_assets > 0)""",
            [last_date],
        ).fetchone()[0]
        top20 = con.execute(
            f"""WITH active AS (
                    SELECT DISTINCT client_id FROM {p['account_snapshots']}
                    WHERE snapshot_date > ? - INTERVAL 12 MONTH AND total_assets >= {ACTIVE_ASSETS_MIN}),
                 paid AS (
                    SELECT a.client_id, coalesce(sum(t.commission), 0) AS commission
                    FROM active a LEFT JOIN {p['trades']} t
                      ON t.client_id = a.client_id AND t.trade_date > ? - INTERVAL 12 MONTH
                    GROUP BY a.client_id)
                SELECT sum(commission) FILTER (WHERE r <= 0.2) / nullif(sum(commission), 0) FROM (
                    SELECT commission, percent_rank() OVER (ORDER BY commission DESC) AS r FROM paid)""",
            [last_date, last_date],
        ).fetchone()[0]
        trades_per_month = con.execute(
            f"""WITH months AS (
                    SELECT client_id, snapshot_date AS start_date FROM {p['account_snapshots']}
                    WHERE total_assets >= {ACTIVE_ASSETS_MIN} AND snapshot_date < ?),
                 counts AS (
                    SELECT m.client_id, m.start_date, count(t.trade_id) AS n
                    FROM months m LEFT JOIN {p['trades']} t
                      ON t.client_id = m.client_id AND t.trade_date > m.start_date
                     AND t.trade_date <= last_day(m.start_date + INTERVAL 1 MONTH)
                    GROUP BY m.client_id, m.start_date),
                 per_client AS (SELECT client_id, avg(n) AS per_month, count(*) AS months FROM counts
                                GROUP BY client_id HAVING count(*) >= 3)
                SELECT median(per_month) FROM per_client""",
            [last_date],
        ).fetchone()[0]
    finally:
        con.close()

    outcomes_12m = churn_outcomes(raw_dir, horizon_days=365)
    annual = float(outcomes_12m["churned"].mean()) if len(outcomes_12m) else None
    if annual is None:
        outcomes_90 = churn_outcomes(raw_dir, horizon_days=90)
        if len(outcomes_90):
            annual = 1 - (1 - float(outcomes_90["churned"].mean())) ** (365 / 90)

    figures = [
        RealismFigure(name="annual_churn_rate_active", value=annual, low=0.10, high=0.30,
                      meaning="Share of active clients (assets ≥ 1,000 yuan) who churn within 12 months "
                              "(assets fall ≥ 80% through net outflow, or the account closes)."),
        RealismFigure(name="top5pct_asset_share", value=_f(top5), low=0.5, high=None,
                      meaning="Share of total assets held by the top 5% of clients at the latest month-end."),
        RealismFigure(name="top20pct_commission_share", value=_f(top20), low=0.7, high=None,
                      meaning="Share of the last 12 months' commission paid by the top 20% of active clients."),
        RealismFigure(name="median_trades_per_month_active", value=_f(trades_per_month), low=1.0, high=8.0,
                      meaning="Median over active clients of their trades per active month."),
    ]
    source = (manifest or {}).get("source", "imported")
    cause_mix = None
    if truth_dir is not None and truth_matches(Path(truth_dir), manifest):
        figures.append(RealismFigure(
            name="true_churn_probability_auc", value=_truth_auc(Path(truth_dir), last_date), low=0.75, high=0.92,
            meaning="AUC of the ground truth's 90-day churn probabilities against realised churn starts "
                    "(the best any churn model could reach)."))
        causes = read_truth_table(Path(truth_dir), "churn_events")["cause"]
        if len(causes):
            cause_mix = {cause: float((causes == cause).mean()) for cause in CAUSE_RANGES}
            for cause, (low, high) in CAUSE_RANGES.items():
                figures.append(RealismFigure(
                    name=f"churn_cause_share_{cause}", value=cause_mix[cause], low=low, high=high,
                    meaning=f"Share of the world's churn events whose real cause is {cause.replace('_', ' ')}."))
    return Profile(rows=rows, source=source, figures=figures, cause_mix=cause_mix,
                   campaign_effects=campaign_effects(raw_dir))


def campaign_effects(raw_dir: Path) -> list[CampaignEffect]:
    """Each action's measured effect in the brokerage's past randomized retention campaigns (contacts tagged
    ``retention-…``): 90-day retention of the clients given the action against the active clients the campaign
    left out, from the raw tables alone."""
    raw_dir = Path(raw_dir)
    contacts = pd.read_parquet(raw_dir / "contacts.parquet")
    if "campaign" not in contacts.columns:
        return []
    tagged = contacts[contacts["campaign"].fillna("").str.startswith("retention-")]
    if tagged.empty:
        return []
    outcomes = churn_outcomes(raw_dir, horizon_days=90)
    if outcomes.empty:
        return []
    outcomes["as_of"] = pd.to_datetime(outcomes["as_of"])
    tagged = tagged.assign(contact_date=pd.to_datetime(tagged["contact_date"]))
    # Each campaign's population: the clients active at the month-end before its first day.
    starts = tagged.groupby("campaign")["contact_date"].min()
    month_ends = np.sort(outcomes["as_of"].unique())
    treated_parts, untreated_parts = [], []
    for campaign, first_day in starts.items():
        before = month_ends[month_ends < np.datetime64(first_day)]
        if not before.size:
            continue
        base = outcomes[outcomes["as_of"] == before[-1]]
        given = tagged[tagged["campaign"] == campaign].drop_duplicates("client_id")[["client_id", "action"]]
        joined = base.merge(given, on="client_id", how="left")
        treated_parts.append(joined[joined["action"].notna()])
        untreated_parts.append(joined[joined["action"].isna()])
    if not treated_parts:
        return []
    treated = pd.concat(treated_parts, ignore_index=True)
    untreated = pd.concat(untreated_parts, ignore_index=True)
    n0 = len(untreated)
    r0 = 1 - float(untreated["churned"].mean()) if n0 else float("nan")
    effects = []
    for action, group in treated.groupby("action", sort=True):
        n1 = len(group)
        r1 = 1 - float(group["churned"].mean())
        se = np.sqrt(r1 * (1 - r1) / n1 + (r0 * (1 - r0) / n0 if n0 else 0.0))
        effects.append(CampaignEffect(action=str(action), treated=n1, untreated=n0, treated_retention=r1,
                                      untreated_retention=r0, effect=r1 - r0, low=r1 - r0 - 1.96 * se,
                                      high=r1 - r0 + 1.96 * se))
    return effects


def _f(value: object) -> float | None:
    return None if value is None else float(value)


def _truth_auc(truth_dir: Path, last_date: object) -> float | None:
    probabilities = read_truth_table(truth_dir, "churn_probabilities")
    events = read_truth_table(truth_dir, "churn_events")
    horizon = pd.Timedelta(days=90)
    probabilities = probabilities[probabilities["month_end"] + horizon <= pd.Timestamp(last_date)]
    merged = probabilities.merge(events[["client_id", "churn_started_on"]], on="client_id", how="left")
    churned = (merged["churn_started_on"] > merged["month_end"]) & (
        merged["churn_started_on"] <= merged["month_end"] + horizon)
    return auc(merged["true_churn_probability_90d"].to_numpy(), churned.to_numpy())


def profile_text(profile: Profile) -> str:
    lines = [f"source: {profile.source}", "", "rows per table:"]
    lines += [f"  {name:<22} {count:>12,}" for name, count in profile.rows.items()]
    lines += ["", "realism:"]
    for f in profile.figures:
        value = "n/a" if f.value is None else f"{f.value:.3f}"
        bounds = f"[{'' if f.low is None else f'{f.low:g}'}, {'' if f.high is None else f'{f.high:g}'}]"
        mark = {True: "ok", False: "OUT OF RANGE", None: "n/a"}[f.within]
        lines.append(f"  {f.name:<32} {value:>8}  {bounds:<12} {mark}")
    if profile.cause_mix:
        lines += ["", "churn causes (share of churn events):"]
        lines += [f"  {cause:<14} {share:6.1%}" for cause, share in profile.cause_mix.items()]
    if profile.campaign_effects:
        lines += ["", "past randomized retention campaigns, 90-day retention (treated vs left out, 95% interval):"]
        for e in profile.campaign_effects:
            lines.append(f"  {e.action:<28} {e.treated_retention:6.1%} (n={e.treated:,}) vs "
                         f"{e.untreated_retention:6.1%}  effect {e.effect:+.1%} [{e.low:+.1%}, {e.high:+.1%}]")
    return "\n".join(lines)


def _plot_png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def write_profile_html(profile: Profile, raw_dir: Path, path: Path) -> Path:
    """Write the profile as one self-contained HTML page with plots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    raw_dir = Path(raw_dir)
    con = duckdb.connect()
    try:
        assets = con.execute(
            f"SELECT snapshot_date, sum(total_assets) / 1e8 AS assets FROM read_parquet('{raw_dir}/account_snapshots"
            ".parquet') GROUP BY 1 ORDER BY 1").df()
        trades = con.execute(
            f"SELECT date_trunc('month', trade_date) AS month, count(*) AS trades, sum(commission) / 1e4 AS "
            f"commission FROM read_parquet('{raw_dir}/trades.parquet') GROUP BY 1 ORDER BY 1").df()
        index = con.execute(f"SELECT trade_date, close FROM read_parquet('{raw_dir}/market_index.parquet') "
                            "ORDER BY 1").df()
        latest = con.execute(
            f"""WITH s AS (SELECT * FROM read_parquet('{raw_dir}/account_snapshots.parquet'))
                SELECT total_assets FROM s
                WHERE snapshot_date = (SELECT max(snapshot_date) FROM s) AND total_assets > 0""").df()
    finally:
        con.close()
    images = []
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot(index["trade_date"], index["close"])
    ax.set_title("Market index")
    images.append(("Market index (bull and bear regimes)", _plot_png(fig)))
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot(assets["snapshot_date"], assets["assets"])
    ax.set_title("Client assets, 100 million yuan")
    images.append(("Total client assets at month-ends", _plot_png(fig)))
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.bar(trades["month"], trades["commission"], width=20)
    ax.set_title("Commission per month, 10 thousand yuan")
    images.append(("Commission per month", _plot_png(fig)))
    fig, ax = plt.subplots(figsize=(7, 3))
    values = np.sort(latest["total_assets"].to_numpy())[::-1]
    if values.size:
        ax.plot(np.arange(1, values.size + 1) / values.size, np.cumsum(values) / values.sum())
    ax.set_xlabel("share of clients (largest first)")
    ax.set_ylabel("share of assets")
    ax.set_title("Concentration of assets (Lorenz)")
    images.append(("Concentration of assets", _plot_png(fig)))

    rows_html = "".join(f"<tr><td>{n}</td><td>{c:,}</td></tr>" for n, c in profile.rows.items())
    fig_html = "".join(
        f"<tr><td>{f.name}</td><td>{'n/a' if f.value is None else f'{f.value:.3f}'}</td>"
        f"<td>{'' if f.low is None else f.low}</td><td>{'' if f.high is None else f.high}</td>"
        f"<td class='{'ok' if f.within else 'bad'}'>{'ok' if f.within else 'out of range'}</td>"
        f"<td>{f.meaning}</td></tr>"
        for f in profile.figures
    )
    plots = "".join(f"<h3>{title}</h3><img src='data:image/png;base64,{png}'/>" for title, png in images)
    causes_html = ""
    if profile.cause_mix:
        causes_html = "<h2>Churn causes</h2><table><tr><th>cause</th><th>share of churn events</th></tr>" + "".join(
            f"<tr><td>{cause}</td><td>{share:.1%}</td></tr>" for cause, share in profile.cause_mix.items()) + "</table>"
    if profile.campaign_effects:
        causes_html += (
            "<h2>Past randomized retention campaigns</h2><p>90-day retention of the clients given each action "
            "against the active clients the campaigns left out, with a 95% interval.</p><table><tr><th>action</th>"
            "<th>treated</th><th>retention</th><th>left out</th><th>retention</th><th>effect</th><th>95% interval"
            "</th></tr>" + "".join(
                f"<tr><td>{e.action}</td><td>{e.treated:,}</td><td>{e.treated_retention:.1%}</td>"
                f"<td>{e.untreated:,}</td><td>{e.untreated_retention:.1%}</td><td>{e.effect:+.1%}</td>"
                f"<td>[{e.low:+.1%}, {e.high:+.1%}]</td></tr>" for e in profile.campaign_effects) + "</table>")
    html = f"""<!doctype html><html><head><meta charset="utf-8"><title>Data profile</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;
padding:4px 8px}}.ok{{color:green}}.bad{{color:#b00}}</style></head><body>
<h1>Data profile</h1><p>Source: {profile.source}</p>
<h2>Realism</h2><table><tr><th>figure</th><th>value</th><th>low</th><th>high</th><th></th><th>meaning</th></tr>
{fig_html}</table>
{causes_html}
<h2>Rows per table</h2><table><tr><th>table</th><th>rows</th></tr>{rows_html}</table>
<h2>Plots</h2>{plots}</body></html>"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path
