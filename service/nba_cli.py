"""Commands of the closed loop: the register of departures, the daily queue plan, outcomes export, experiments."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table as RichTable

from config import Settings, get_settings

console = Console()
lifecycle_app = typer.Typer(help="Client lifecycle: why lost clients left.", no_args_is_help=True)
queue_app = typer.Typer(help="Brokers' daily work queues.", no_args_is_help=True)
outcomes_app = typer.Typer(help="Outcomes recorded against decisions.", no_args_is_help=True)
experiments_app = typer.Typer(help="Holdout and challenger arms: what the policy achieves.", no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@lifecycle_app.command("record")
def lifecycle_record(as_json: JsonOpt = False) -> None:
    """Record every lost client's last active month-end and the churn champion's likely cause then, into
    CRM_HOME/lifecycle/departures.parquet (the API reloads it within CRM_RELOAD_INTERVAL_S)."""
    import pandas as pd
    import pyarrow.parquet as pq

    from features.indicators.compute import view_path
    from features.store.feature_store import offline_dir
    from model_registry.registry import Registry
    from service.lifecycle import record_departures
    from service.scoring import Models

    settings = get_settings()
    models = Models.load(Registry(settings.tracking_uri, settings.mlflow_artifacts_dir), threads=0)
    offline = offline_dir(settings.features_dir)

    def causes(wanted: pd.DataFrame) -> list[str]:
        ids = wanted["client_id"].tolist()
        frame = wanted.rename(columns={"last_active": "as_of"}).copy()
        by_view: dict[str, list[str]] = {}
        for ref in models.references:
            view, name = ref.split(":", 1)
            by_view.setdefault(view, []).append(name)
        for view, names in by_view.items():
            part = pq.read_table(view_path(offline, view), columns=["client_id", "as_of", *dict.fromkeys(names)],
                                 filters=[("client_id", "in", ids)]).to_pandas()
            frame = frame.merge(part, on=["client_id", "as_of"], how="left")
        return models.score_frame(frame.set_index("client_id"))["churn_cause"].tolist()

    summary = record_departures(offline, settings.raw_dir, causes, settings.lifecycle_dir)
    _report(summary, as_json, f"{summary['departed']:,} lost clients recorded ({summary['closed']:,} closed) "
                              f"as of {summary['as_of']}; by cause: {summary['by_cause']}")


def _report(summary: dict, as_json: bool, sentence: str) -> None:
    """A command's summary: its JSON with --json, otherwise the sentence a person reads."""
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        console.print(sentence)


@queue_app.command("plan")
def queue_plan(
    date: Annotated[str | None, typer.Option(help="The day (YYYY-MM-DD); default today, Asia/Shanghai.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Decide every client in the online store (each decision audited) and write the day's plan of next best
    actions, which GET /v1/queue and /ui/queue read."""
    from rich.progress import Progress

    from features.store.feature_store import latest_frame, offline_dir
    from service.loop_figures import write_broker_loop
    from service.queue import make_plan
    from service.runtime import Runtime

    settings = get_settings()
    day = dt.date.fromisoformat(date) if date else dt.datetime.now(ZoneInfo(settings.timezone)).date()
    runtime = Runtime(settings, watch=False)
    try:
        if runtime.served is None:
            typer.echo("error [no_active_ruleset]: no ruleset is active", err=True)
            raise typer.Exit(1)
        ids = list(latest_frame(settings.features_dir, ["client_category:total_assets"]).index)
        ids += [client_id for client_id, _ in runtime.register.closed_beyond(ids)]
        with Progress(console=console, transient=True, disable=as_json) as bar:
            task = bar.add_task("deciding clients", total=len(ids))
            summary = make_plan(runtime, ids, day, progress=lambda done, total: bar.update(task, completed=done))
        write_broker_loop(settings.home, settings.raw_dir, offline_dir(settings.features_dir), runtime.db)
    finally:
        runtime.close()
    _report(summary, as_json, f"{summary['clients_decided']:,} clients decided, {summary['actions_planned']:,} "
                              f"actions planned for {summary['date']} into {summary['out']} in {summary['seconds']} s")

@queue_app.command("scorecards")
def queue_scorecards() -> None:
    """Recompute every broker's closed-loop figures (CRM_HOME/loop/brokers.parquet), which `crm report brokers`,
    the managers' page and GET /v1/scorecards/brokers show."""
    from features.store.feature_store import offline_dir
    from service.db import make_engine
    from service.loop_figures import write_broker_loop

    settings = get_settings()
    engine = make_engine(settings.service_database_url)
    try:
        path = write_broker_loop(settings.home, settings.raw_dir, offline_dir(settings.features_dir), engine)
    finally:
        engine.dispose()
    console.print(f"wrote {path}; see them with: crm report brokers")


@outcomes_app.command("export")
def outcomes_export(
    folder: Annotated[Path, typer.Argument(help="Folder to write every raw table into.")],
    every: Annotated[bool, typer.Option("--all", help="Every outcome, not only those recorded since the raw "
                                                     "contacts were last imported.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write the raw tables with the recorded outcomes appended to contacts (one contact per decision and action),
    ready for `crm data import FOLDER` and the next feature build."""
    import os
    from datetime import UTC, datetime

    from service.db import make_engine
    from service.outcomes import all_outcomes, export_contacts

    settings = get_settings()
    engine = make_engine(settings.service_database_url)
    try:
        frame = all_outcomes(engine)
    finally:
        engine.dispose()
    since = None
    contacts = settings.raw_dir / "contacts.parquet"
    if not every and contacts.exists():
        since = datetime.fromtimestamp(os.stat(contacts).st_mtime, UTC).isoformat()
    summary = export_contacts(frame, settings.raw_dir, folder, settings.timezone, since)
    _report(summary, as_json, f"{summary['contacts_added']:,} contacts from {summary['outcomes']:,} outcomes "
                              f"written with the raw tables into {summary['out']}; import them with: "
                              f"crm data import {folder}")

def experiment_figures(settings: Settings | None = None) -> dict:
    """The experiment report over the audit log and the raw data of CRM_HOME."""
    from service.db import make_engine
    from service.experiment_report import assignments_from_audit, delivered_by_client, observe, report
    from service.outcomes import all_outcomes

    settings = settings or get_settings()
    engine = make_engine(settings.service_database_url)
    try:
        assignments = assignments_from_audit(engine)
        delivered = delivered_by_client(all_outcomes(engine), assignments.attrs["decision_client"])
    finally:
        engine.dispose()
    if assignments.empty:
        return {"arms": {}, "clients": 0, "note": "no decisions in the audit log yet"}
    return report(observe(assignments, settings.raw_dir), delivered)


@experiments_app.command("report")
def experiments_report(as_json: JsonOpt = False) -> None:
    """Per arm: clients, actions recommended and delivered, churn within 90 days, assets kept, and each arm's
    difference from the holdout with a 95% confidence interval."""
    figures = experiment_figures()
    if as_json:
        typer.echo(json.dumps(figures, indent=2))
        return
    table = RichTable(title=f"Experiment arms ({figures['clients']:,} clients)")
    for column in ("arm", "clients", "recommended", "delivered", "observed", "churn 90d", "Δ churn vs holdout [95% CI]",
                   "assets kept", "Δ assets kept [95% CI]"):
        table.add_column(column)
    for arm, f in figures["arms"].items():
        vs = f.get("vs_holdout") or {}
        table.add_row(arm, f"{f['clients']:,}", f"{f['actions_recommended']:,}", f"{f['actions_delivered']:,}",
                      f"{f['clients_observed']:,}", _pct(f["churn_90d"]), _interval(vs.get("churn_90d")),
                      _num(f["assets_kept"]), _interval(vs.get("assets_kept")))
    console.print(table)
    console.print(figures["note"])


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.2%}"


def _num(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def _interval(d: dict | None) -> str:
    if not d:
        return "–"
    lo, hi = d["ci95"]
    return f"{d['difference']:+.4f} [{lo:+.4f}, {hi:+.4f}]"
