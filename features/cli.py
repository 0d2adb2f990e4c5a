"""`crm data …`: generate the synthetic world, import a brokerage's exports, profile the raw data."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from config import get_settings

data_app = typer.Typer(help="Raw brokerage data: generate a synthetic world, import exports, profile.",
                       no_args_is_help=True)
console = Console(stderr=True)


def _progress_factory(progress) -> Callable[[str, int], Callable[[int], None]]:
    def factory(label: str, total: int) -> Callable[[int], None]:
        task = progress.add_task(label, total=total)
        return lambda steps: progress.advance(task, steps)

    return factory


@data_app.command("generate")
def generate(
    clients: Annotated[int, typer.Option(help="Number of clients in the world (accounts ever opened).")] = 20_000,
    months: Annotated[int, typer.Option(help="Months of history to simulate.")] = 24,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives byte-identical tables.")] = 7,
    start: Annotated[str, typer.Option(help="First month of the window, YYYY-MM.")] = "2024-01",
    branches: Annotated[int, typer.Option(help="Number of branches.")] = 15,
    actions: Annotated[Path | None, typer.Option(
        help="Action plan (parquet: client_id, action, date, channel, broker_id) applied on its dates.")] = None,
) -> None:
    """Generate a synthetic A-share brokerage into CRM_HOME/raw (ground truth into CRM_HOME/ground_truth)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from features.synthetic.actions import ActionPlanError
    from features.synthetic.world import WORLD_MANIFEST, WorldConfig, generate_world

    settings = get_settings()
    try:
        first = dt.datetime.strptime(start, "%Y-%m").date()
    except ValueError:
        raise typer.BadParameter(f"--start must look like 2024-01, got {start!r}") from None
    config = WorldConfig(clients=clients, months=months, seed=seed, start=first, branches=branches)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=console) as progress:
        try:
            counts = generate_world(config, settings.raw_dir, settings.ground_truth_dir, _progress_factory(progress),
                                    actions=actions)
        except ActionPlanError as error:
            console.print(f"[red]action plan rejected[/red] ({error.code}): {error}; nothing was changed",
                          soft_wrap=True)
            raise typer.Exit(code=2) from None
    plan = f" with the {actions} action plan" if actions else ""
    world_id = json.loads((settings.raw_dir / WORLD_MANIFEST).read_text())["world_id"]
    console.print(f"[green]generated[/green] world {world_id}{plan} into {settings.raw_dir} "
                  f"({sum(counts.values()):,} rows in {len(counts)} tables); ground truth in "
                  f"{settings.ground_truth_dir}")


@data_app.command("import")
def import_(
    source: Annotated[Path, typer.Argument(help="Folder with one <table>.parquet or <table>.csv per raw table.")],
) -> None:
    """Validate a brokerage's exports against the raw schema and, only if all pass, make them the raw data."""
    from features.raw.importer import import_directory
    from features.raw.validation import RawDataError

    settings = get_settings()
    try:
        summary = import_directory(source, settings.raw_dir)
    except RawDataError as error:
        console.print(f"[red]import rejected[/red] ({error.code}); nothing in {settings.raw_dir} was changed")
        for finding in error.findings:
            console.print(f"  - {finding}", markup=False, soft_wrap=True)
        raise typer.Exit(code=1) from None
    except FileNotFoundError as error:
        console.print(f"[red]import failed[/red]: {error}", soft_wrap=True)
        raise typer.Exit(code=1) from None
    # The ground truth of a generated world does not describe imported data.
    if settings.ground_truth_dir.exists():
        shutil.rmtree(settings.ground_truth_dir)
    console.print(f"[green]imported[/green] {sum(summary.rows.values()):,} rows in {len(summary.rows)} tables "
                  f"into {settings.raw_dir}")


@data_app.command("profile")
def profile(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")] = False,
    html: Annotated[Path | None, typer.Option(help="Where to write the HTML report.")] = None,
) -> None:
    """Row counts and realism figures of the raw data; also written as HTML with plots."""
    from features.profile import build_profile, profile_text, write_profile_html

    settings = get_settings()
    try:
        result = build_profile(settings.raw_dir, settings.ground_truth_dir)
    except FileNotFoundError as error:
        console.print(f"[red]no raw data[/red]: {error}", soft_wrap=True)
        raise typer.Exit(code=1) from None
    target = html or settings.reports_dir / "data_profile.html"
    write_profile_html(result, settings.raw_dir, target)
    if as_json:
        typer.echo(json.dumps(result.as_json(), indent=2))
    else:
        typer.echo(profile_text(result))
        console.print(f"HTML report: {target}")


@data_app.command("schema")
def schema(
    out: Annotated[Path | None, typer.Option(help="Write the markdown here instead of printing it.")] = None,
) -> None:
    """The raw-table contract, column by column (name, type, unit, meaning, Chinese term)."""
    from features.raw.schema import schema_markdown

    text = schema_markdown()
    if out:
        out.write_text(text, encoding="utf-8")
        console.print(f"wrote {out}")
    else:
        typer.echo(text)


features_app = typer.Typer(help="The indicator system: compute, register in Feast, materialize, catalog.",
                           no_args_is_help=True)
report_app = typer.Typer(help="Broker scorecards and branch rankings.", no_args_is_help=True)


@features_app.command("build")
def features_build(
    engine: Annotated[str | None, typer.Option(help="duckdb (in process) or spark (at CRM_SPARK_MASTER); default "
                                               "CRM_COMPUTE_ENGINE.")] = None,
) -> None:
    """Compute every indicator at every month-end as-of date and the latest date (offline tables)."""
    from features.indicators.compute import compute_indicators
    from features.indicators.engine import ENGINES, SparkUnavailableError
    from features.store.feature_store import offline_dir

    settings = get_settings()
    engine = engine or settings.compute_engine
    if engine not in ENGINES:
        raise typer.BadParameter(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    where = "DuckDB" if engine == "duckdb" else f"Spark ({settings.spark_master})"
    from features.events.batch import events_raw_dir, export_event_tables, latest_event_date

    with console.status(f"computing indicators on {where}"):
        try:
            merged = export_event_tables(settings.events_dir, settings.raw_dir) if settings.raw_dir.exists() else {}
            if merged:
                console.print("  client events merged: " + ", ".join(f"{n} {k}" for k, n in merged.items()))
            rows = compute_indicators(settings.raw_dir, offline_dir(settings.features_dir),
                                      progress=lambda line: console.print(f"  {line}"), engine=engine,
                                      spark_master=settings.spark_master,
                                      duckdb_memory_limit=settings.duckdb_memory_limit,
                                      duckdb_threads=settings.duckdb_threads,
                                      events_raw_dir=events_raw_dir(settings.events_dir) if merged else None,
                                      latest_at_least=latest_event_date(settings.events_dir) if merged else None)
        except FileNotFoundError as error:
            console.print(f"[red]no raw data[/red]: {error}; run `crm data generate` first", soft_wrap=True)
            raise typer.Exit(code=1) from None
        except SparkUnavailableError as error:
            console.print(f"[red]{error.code}[/red]: {error}", soft_wrap=True)
            raise typer.Exit(code=1) from None
    console.print(f"[green]built[/green] {len(rows)} feature views ({sum(rows.values()):,} rows) in "
                  f"{offline_dir(settings.features_dir)}")


@features_app.command("apply")
def features_apply() -> None:
    """Register entities, feature views and feature services in the Feast registry (idempotent), with sources
    for the offline store of CRM_COMPUTE_ENGINE (Feast's DuckDB store, or its Spark store)."""
    from features.store.feature_store import FeaturesNotBuiltError, apply

    settings = get_settings()
    try:
        names = apply(settings.features_dir, settings.online_store, settings.compute_engine, settings.spark_master)
    except FeaturesNotBuiltError as error:
        console.print(f"[red]{error.code}[/red]: {error}", soft_wrap=True)
        raise typer.Exit(code=1) from None
    console.print(f"[green]applied[/green] {len(names)} Feast objects: {', '.join(names)}", soft_wrap=True)


@features_app.command("materialize")
def features_materialize() -> None:
    """Load the latest indicator values into the online store (idempotent)."""
    from features.store.feature_store import FeaturesNotBuiltError, materialize_latest

    settings = get_settings()
    try:
        latest = materialize_latest(settings.features_dir, settings.online_store, settings.spark_master)
    except FeaturesNotBuiltError as error:
        console.print(f"[red]{error.code}[/red]: {error}", soft_wrap=True)
        raise typer.Exit(code=1) from None
    console.print(f"[green]materialized[/green] the indicators as of {latest} into the online store")


@features_app.command("read-bench")
def features_read_bench(
    reads: Annotated[int, typer.Option(min=100, help="Reads to time.")] = 5000,
) -> None:
    """Time the decision API's online read of one client's whole model vector (every feature service's
    indicators) from the configured online store (CRM_ONLINE_STORE: SQLite, or Redis); prints JSON."""
    import gc
    import time

    from features.model_features import FEATURE_SERVICES, feature_references
    from features.store.feature_store import latest_frame, open_store
    from features.store.online_reader import OnlineReader

    settings = get_settings()
    references = list(dict.fromkeys(ref for service in FEATURE_SERVICES for ref in feature_references(service)))
    reader = OnlineReader(open_store(settings.features_dir, settings.online_store), references, timeout_s=5)
    clients = list(latest_frame(settings.features_dir, references[:1]).index)
    for client in clients[:200]:  # warm-up
        if reader.read(client) is None:
            console.print(f"[red]client {client} is not in the online store[/red]: run `crm features materialize`")
            raise typer.Exit(code=1)
    gc.collect()
    gc.freeze()
    samples = []
    for k in range(reads):
        client = clients[(k * 7919) % len(clients)]
        started = time.perf_counter_ns()
        reader.read(client)
        samples.append(time.perf_counter_ns() - started)
    samples.sort()

    def ms(q: float) -> float:
        return round(samples[min(len(samples) - 1, int(q * len(samples)))] / 1e6, 3)

    store = "redis" if reader.redis else "sqlite" if reader.lean else type(reader.online_store).__name__
    typer.echo(json.dumps({"store": store, "indicators": len(references), "clients": len(clients), "reads": reads,
                           "p50_ms": ms(0.5), "p99_ms": ms(0.99), "max_ms": ms(1.0)}))


@features_app.command("catalog")
def features_catalog(
    as_json: Annotated[bool, typer.Option("--json", help="Print the catalog as a JSON list.")] = False,
    out: Annotated[Path | None, typer.Option(help="Folder for catalog.md and catalog.html.")] = None,
) -> None:
    """The indicator catalog (name, family, entity, formula, window, unit, Chinese term), from the code."""
    from features.catalog import catalog_html, catalog_markdown, catalog_rows

    if as_json:
        typer.echo(json.dumps(catalog_rows(), ensure_ascii=False, indent=2))
        return
    folder = out or get_settings().reports_dir
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "catalog.md").write_text(catalog_markdown(), encoding="utf-8")
    (folder / "catalog.html").write_text(catalog_html(), encoding="utf-8")
    console.print(f"wrote {folder / 'catalog.md'} and {folder / 'catalog.html'} ({len(catalog_rows())} indicators)")


def _report(kind: str, as_json: bool, html: Path | None) -> None:
    from rich.table import Table

    from features.scorecards import (
        BRANCH_COLUMNS,
        BROKER_COLUMNS,
        branch_rankings,
        broker_scorecards,
        records,
        write_report_html,
    )
    from features.store.feature_store import offline_dir

    settings = get_settings()
    try:
        if kind == "brokers":
            frame = broker_scorecards(offline_dir(settings.features_dir), settings.raw_dir,
                                      settings.home / "loop" / "brokers.parquet")
        else:
            frame = branch_rankings(offline_dir(settings.features_dir), settings.raw_dir)
    except FileNotFoundError as error:
        console.print(f"[red]no indicators[/red]: {error}", soft_wrap=True)
        raise typer.Exit(code=1) from None
    target = html or settings.reports_dir / f"{kind}.html"
    write_report_html(kind, frame, target)
    if as_json:
        typer.echo(json.dumps(records(frame), ensure_ascii=False, indent=2, default=str))
        return
    columns = BROKER_COLUMNS if kind == "brokers" else BRANCH_COLUMNS
    keys = ["broker_id", "branch_id"] if kind == "brokers" else ["branch_id", "name"]
    as_of = frame["as_of"].iloc[0] if len(frame) else "n/a"
    table = Table(title=f"{'Broker scorecards' if kind == 'brokers' else 'Branch rankings'} as of {as_of}")
    for header in [*keys, *columns.values()]:
        table.add_column(header, justify="right")
    for _, row in frame.iterrows():
        cells = [str(row[k]) for k in keys]
        for column in columns:
            value = row[column]
            cells.append(f"{value:,.3f}" if isinstance(value, float) and abs(value) < 10 else
                         f"{value:,.0f}" if isinstance(value, float) else f"{value:,}")
        table.add_row(*cells)
    Console(width=220).print(table)
    console.print(f"HTML report: {target}")


@report_app.command("brokers")
def report_brokers(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    html: Annotated[Path | None, typer.Option(help="Where to write the HTML report.")] = None,
) -> None:
    """Broker scorecards (经纪人管理): clients, assets, commission, flows, returns, churn, satisfaction."""
    _report("brokers", as_json, html)


@report_app.command("branches")
def report_branches(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    html: Annotated[Path | None, typer.Option(help="Where to write the HTML report.")] = None,
) -> None:
    """Branch rankings (营业部): volume and market share, clients, assets, flows, satisfaction, rank."""
    _report("branches", as_json, html)
