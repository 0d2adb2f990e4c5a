"""Commands that need the serving side (features + models + rules): `crm rules simulate`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table as RichTable

from config import get_settings
from rules.errors import RulesError
from rules.model import BUNDLED

console = Console()


def simulate(
    candidate: Annotated[str, typer.Argument(help="Candidate: folder, version (hash prefix) or 'bundled'.")],
    against: Annotated[str, typer.Option(help="What to compare with: 'active', a version or a folder.")] = "active",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    chart_path: Annotated[Path | None, typer.Option("--chart", help="PNG path; default "
                                                    "CRM_HOME/reports/rules/simulation-<candidate>.png.")] = None,
) -> None:
    """Evaluate the active and a candidate ruleset over every client with current features and scores: tier
    migration, counts per action and alert, sample clients per change; as a table, JSON and a chart."""
    from model_registry.registry import Registry
    from rules.cli import resolve_spec
    from rules.engine import build
    from rules.vocabulary import load_vocabulary
    from service.lifecycle import Register
    from service.scoring import Models
    from service.simulation import chart, load_population
    from service.simulation import simulate as run

    settings = get_settings()
    try:
        active, cand = build(resolve_spec(against)), build(resolve_spec(candidate))
    except RulesError as e:
        typer.echo(f"error [{e.code}]: {e}", err=True)
        raise typer.Exit(1) from None
    models = Models.load(Registry(settings.tracking_uri, settings.mlflow_artifacts_dir), threads=0)
    population = load_population(settings.features_dir, settings.home / "scores", models, load_vocabulary(),
                                 Register.load(settings.lifecycle_dir))
    report = run(active, cand, population, load_vocabulary().products, settings.max_actions)
    png = chart(report, chart_path or settings.reports_dir / "rules" / f"simulation-{cand.version[:12]}.png")
    if as_json:
        typer.echo(json.dumps({**report.as_dict(), "chart": str(png)}, indent=2, ensure_ascii=False))
        return
    console.print(f"Candidate {cand.version[:12]} against {against} {active.version[:12]}: "
                  f"{report.clients:,} clients as of {report.as_of}, models {report.model_versions}")
    table = RichTable(title="Tier migration (rows: active, columns: candidate)")
    table.add_column("active \\ candidate")
    for t in report.tiers:
        table.add_column(t, justify="right")
    for f in report.tiers:
        table.add_row(f, *(f"{report.tier_migration[f][t]:,}" for t in report.tiers))
    console.print(table)
    for title, counts in (("Actions", report.actions), ("Alerts", report.alerts),
                          ("Next best actions after arbitration", report.next_best_actions)):
        t = RichTable(title=f"{title} (clients)")
        for col in ("", "active", "candidate", "change"):
            t.add_column(col, justify="right" if col else "left")
        for name, c in counts.items():
            t.add_row(name, f"{c['active']:,}", f"{c['candidate']:,}", f"{c['candidate'] - c['active']:+,}")
        console.print(t)
    if report.next_best_cost_yuan:
        console.print(f"delivering every next best action would cost {report.next_best_cost_yuan} yuan")
    console.print(f"{report.clients_changed:,} clients would get a different decision")
    for change, ids in report.samples.items():
        console.print(f"  {change}: {', '.join(ids)}")
    console.print(f"chart: {png}   timings (s): {report.seconds}")


def bench(
    ruleset: Annotated[str, typer.Option(help="Folder, version, 'active' or 'bundled'.")] = "bundled",
    limit: Annotated[int, typer.Option(help="Clients to time one by one (0 = all).")] = 0,
) -> None:
    """Benchmark: one in-process rules evaluation per client (median and p99 over the population, with and
    without the input check), and a full simulation of the ruleset against itself. Prints JSON."""
    import gc
    import statistics
    import time

    from model_registry.registry import Registry
    from rules.cli import resolve_spec
    from rules.engine import build
    from rules.vocabulary import load_vocabulary
    from service.lifecycle import Register
    from service.scoring import Models
    from service.simulation import load_population
    from service.simulation import simulate as run

    settings = get_settings()
    compiled = build(resolve_spec(ruleset))
    started = time.perf_counter()
    models = Models.load(Registry(settings.tracking_uri, settings.mlflow_artifacts_dir), threads=0)
    loaded = time.perf_counter()
    population = load_population(settings.features_dir, settings.home / "scores", models, load_vocabulary(),
                                 Register.load(settings.lifecycle_dir))
    prepared = time.perf_counter()
    report = run(compiled, compiled, population)
    simulated = time.perf_counter()
    inputs = population.inputs[:limit] if limit else population.inputs
    result: dict = {"clients": len(population.inputs), "timed_clients": len(inputs), "ruleset": compiled.version,
                    "tables": len(compiled.tables), "rules": sum(len(t.spec.rules) for t in compiled.tables)}
    gc.collect()
    gc.freeze()
    for check in (False, True):
        for values in inputs[:2000]:  # warm-up
            compiled.evaluate(values, check=check)
        samples = []
        clock = time.perf_counter_ns
        for values in inputs:
            t0 = clock()
            compiled.evaluate(values, check=check)
            samples.append(clock() - t0)
        samples.sort()
        key = "checked" if check else "unchecked"
        result[f"evaluate_{key}_median_us"] = round(statistics.median(samples) / 1000, 2)
        result[f"evaluate_{key}_p99_us"] = round(samples[int(len(samples) * 0.99) - 1] / 1000, 2)
    result["simulate"] = {"seconds_load_models": round(loaded - started, 2),
                          "seconds_population": round(prepared - loaded, 2), "scores_cached": population.scores_cached,
                          "seconds_rules_both_rulesets": round(simulated - prepared, 2),
                          "seconds_total_after_model_load": round(simulated - loaded, 2), **report.seconds}
    typer.echo(json.dumps(result, indent=2))


keys_app = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)


def _service_db():
    from service.db import make_engine

    settings = get_settings()
    settings.ensure_home()
    return make_engine(settings.service_database_url)


@keys_app.command("create")
def create_key(
    role: Annotated[str, typer.Option(help="front_office, branch_manager, data_scientist, compliance or admin.")],
    name: Annotated[str, typer.Option(help="Who holds the key (recorded as author/approver for compliance).")] = "",
    branch: Annotated[str | None, typer.Option(help="Scope the key to one branch (e.g. B003): it sees only that "
                                               "branch's clients and brokers. Required for branch_manager.")] = None,
    broker: Annotated[str | None, typer.Option(help="Scope the key to one broker's clients (e.g. K00012); the "
                                               "branch is the broker's.")] = None,
    rate_limit: Annotated[int | None, typer.Option(min=0, help="Requests per second for this key (0: none); "
                                                   "default its role's (CRM_RATE_LIMITS).")] = None,
) -> None:
    """Create an API key for a role, firm-wide or scoped to a branch or broker, and print it once; only its hash
    is stored."""
    from service.keys import KeyScopeError, Role
    from service.keys import create_key as make
    from service.scope import Directory, ScopeInvalidError

    try:
        chosen = Role(role)
    except ValueError:
        typer.echo(f"error: unknown role {role!r}; choose one of {', '.join(r.value for r in Role)}", err=True)
        raise typer.Exit(1) from None
    try:
        scope = Directory(get_settings().raw_dir).resolve(branch, broker)
        key_id, key = make(_service_db(), chosen, name or f"{chosen.value}-{__import__('secrets').token_hex(2)}",
                           scope, rate_limit)
    except (ScopeInvalidError, KeyScopeError) as e:
        typer.echo(f"error [request_invalid]: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"key id {key_id} ({chosen.value}, {scope.describe()}); keep this key, it is not shown again:\n{key}")


@keys_app.command("list")
def list_keys(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Every key's id, holder, role and dates (never the secret)."""
    from service.keys import list_keys as rows

    keys = rows(_service_db())
    if as_json:
        typer.echo(json.dumps(keys, indent=2))
        return
    table = RichTable(title="API keys")
    for col in ("key id", "name", "role", "scope", "rate limit", "created", "revoked"):
        table.add_column(col)
    for k in keys:
        scope = f"broker {k['broker_id']}" if k["broker_id"] else f"branch {k['branch_id']}" if k["branch_id"] else ""
        table.add_row(k["key_id"], k["name"], k["role"], scope or "firm-wide",
                      "" if k["rate_limit"] is None else f"{k['rate_limit']}/s", k["created_at"], k["revoked_at"] or "")
    console.print(table)


KeyOpt = Annotated[str, typer.Option("--key", envvar="CRM_API_KEY", show_default=False,
                                      help="Your firm-wide compliance API key (or CRM_API_KEY); its holder's name "
                                           "is what the history records.")]
NoteOpt = Annotated[str, typer.Option("--note", help="Why.")]


def compliance_officer(key: str) -> str:
    """The name of the holder of a valid, firm-wide compliance (or admin) key; exits with the API's error codes
    otherwise. The rule history records this name: never one typed on the command line."""
    from service.keys import KeyRing, Role
    from service.scope import ScopeError, ensure_firm_wide

    if not key.strip():
        typer.echo("error [unauthenticated]: pass your compliance key with --key or CRM_API_KEY "
                   "(crm keys create --role compliance --name 'YOUR NAME')", err=True)
        raise typer.Exit(1)
    who = KeyRing(_service_db()).check(key.strip())
    if who is None:
        typer.echo("error [unauthenticated]: the API key is not valid or was revoked", err=True)
        raise typer.Exit(1)
    try:
        if not who.may(Role.COMPLIANCE):
            raise ScopeError(f"role {who.role.value} may not act on rulesets; it needs compliance or admin")
        ensure_firm_wide(who, "act on rulesets")
    except ScopeError as e:
        typer.echo(f"error [forbidden]: {e}", err=True)
        raise typer.Exit(1) from None
    return who.name


def rules_submit(
    key: KeyOpt = "",
    path: Annotated[Path, typer.Argument(help="Ruleset folder; default the bundled ruleset.")] = BUNDLED,
    note: Annotated[str, typer.Option("--note", help="What changed and why.")] = ...,  # type: ignore[assignment]
) -> None:
    """Submit a valid ruleset for approval as the key's holder (its author; another officer must approve it)."""
    from rules.cli import submit_as

    submit_as(compliance_officer(key), path, note)


def rules_approve(version: Annotated[str, typer.Argument(help="Version hash or a unique prefix.")],
                  key: KeyOpt = "", note: NoteOpt = "") -> None:
    """Approve a submitted version as the key's holder; refused for its author (maker-checker)."""
    from rules.cli import approve_as

    approve_as(compliance_officer(key), version, note)


def rules_reject(version: Annotated[str, typer.Argument(help="Version hash or a unique prefix.")],
                 note: Annotated[str, typer.Option("--note", help="Why it is rejected.")] = ...,  # type: ignore[assignment]
                 key: KeyOpt = "") -> None:
    """Reject a submitted version with a reason as the key's holder; refused for its author."""
    from rules.cli import reject_as

    reject_as(compliance_officer(key), version, note)


def rules_activate(version: Annotated[str, typer.Argument(help="Version hash or a unique prefix.")],
                   key: KeyOpt = "", note: NoteOpt = "") -> None:
    """Make an approved version the active one (the API picks it up), as the key's holder."""
    from rules.cli import activate_as

    activate_as(compliance_officer(key), version, note)


@keys_app.command("revoke")
def revoke_key(key_id: Annotated[str, typer.Argument(help="The key id (not the key).")]) -> None:
    """Revoke a key and end its web sessions; workers stop accepting it within seconds."""
    from service.keys import revoke_key as revoke

    if not revoke(_service_db(), key_id):
        typer.echo(f"error: no active key {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")


def serve(
    host: Annotated[str | None, typer.Option(help="Address; default CRM_HOST (127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port; default CRM_PORT (8000).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes; default CRM_WORKERS (1).")] = None,
) -> None:
    """Serve the decision API with uvicorn (OpenAPI docs at /docs). SIGTERM finishes in-flight requests and writes
    every audit record before exiting."""
    import os
    import tempfile

    import uvicorn

    settings = get_settings()
    workers = workers or settings.workers
    if workers > 1:
        # Workers are separate processes: Prometheus' multiprocess mode adds their metrics up at /metrics.
        folder = tempfile.mkdtemp(prefix="crm-metrics-")
        for name in ("CRM_METRICS_DIR", "PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR"):
            os.environ[name] = folder
    from service.applier_process import applier_beside
    from service.runtime import prepare_home

    prepare_home(settings)  # once, before the workers and the event applier open the databases together
    with applier_beside(settings):  # client events are applied beside the workers, not in them
        uvicorn.run("service.app:create_app", factory=True, host=host or settings.host, port=port or settings.port,
                    workers=workers, log_level="info", access_log=False, timeout_graceful_shutdown=30)


def decide_command(
    client_id: Annotated[str | None, typer.Argument(help="A client id; omit with --bench.")] = None,
    bench: Annotated[int, typer.Option(help="Benchmark: decide for this many clients in process and print "
                                            "latency percentiles (JSON) instead of one decision.")] = 0,
    dump: Annotated[Path | None, typer.Option(help="With --bench: also write each decision (response and rule "
                                                   "inputs, keys sorted) as a JSON line to this file, to compare "
                                                   "two builds' decisions with `cmp`.")] = None,
) -> None:
    """One decision in process, exactly as the API computes it (without the audit record); or, with --bench N,
    in-process latency of N decisions over the population's clients."""
    import gc
    import time

    from features.store.feature_store import latest_frame
    from service.decisions import decide
    from service.errors import ApiError
    from service.runtime import Runtime

    settings = get_settings()
    runtime = Runtime(settings, watch=False)
    try:
        served = runtime.served
        if served is None:
            typer.echo("error [no_active_ruleset]: no ruleset is active", err=True)
            raise typer.Exit(1)
        if not bench:
            if client_id is None:
                typer.echo("error: give a client id, or --bench N", err=True)
                raise typer.Exit(2)
            try:
                response, _, _ = decide(served, client_id, settings.timezone)
            except ApiError as e:
                typer.echo(f"error [{e.code}]: {e.message}", err=True)
                raise typer.Exit(1) from None
            typer.echo(json.dumps(response, indent=2, ensure_ascii=False))
            return
        ids = list(latest_frame(settings.features_dir, ["client_category:total_assets"]).index)
        for c in ids[:200]:  # warm-up
            decide(served, c, settings.timezone)
        gc.collect()
        gc.freeze()
        samples = []
        lines = []
        for k in range(bench):
            c = ids[(k * 7919) % len(ids)]
            t0 = time.perf_counter_ns()
            response, _, inputs = decide(served, c, settings.timezone)
            samples.append(time.perf_counter_ns() - t0)
            if dump is not None:
                lines.append(json.dumps({"response": response, "rule_inputs": inputs}, sort_keys=True,
                                        ensure_ascii=False))
        if dump is not None:
            dump.write_text("\n".join(lines) + "\n", encoding="utf-8")
        samples.sort()

        def pct(p: float) -> float:
            return round(samples[min(len(samples) - 1, int(len(samples) * p))] / 1e6, 3)

        typer.echo(json.dumps({"decisions": bench, "clients": len(ids), "p50_ms": pct(0.5), "p90_ms": pct(0.9),
                               "p99_ms": pct(0.99), "max_ms": pct(1.0), "models": served.model_versions,
                               "ruleset": served.ruleset.version[:12]}))
    finally:
        runtime.close()


score_app = typer.Typer(help="Batch scoring of the whole population.", no_args_is_help=True)


@score_app.command("batch")
def score_batch(
    out: Annotated[Path | None, typer.Option(help="Parquet file; default CRM_HOME/scores/decisions.parquet"
                                             )] = None,
    ruleset: Annotated[str, typer.Option(help="Folder, version, 'active' or 'bundled'.")] = "active",
    chunk: Annotated[int, typer.Option(min=1_000, help="Clients per chunk.")] = 100_000,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    engine: Annotated[str | None, typer.Option(help="Who reads the offline store: duckdb or spark; default "
                                               "CRM_COMPUTE_ENGINE (Spark at CRM_SPARK_MASTER).")] = None,
) -> None:
    """Score every client from the offline store (latest indicators) with the champions and the ruleset, with
    reasons, into parquet, chunk by chunk."""
    from rich.progress import Progress

    from features.indicators.engine import SparkUnavailableError
    from model_registry.registry import Registry
    from rules.cli import resolve_spec
    from rules.engine import build
    from rules.vocabulary import load_vocabulary
    from service.batch_scoring import score_population
    from service.lifecycle import Register
    from service.scoring import Models

    settings = get_settings()
    engine = engine or settings.compute_engine
    if engine not in ("duckdb", "spark"):
        raise typer.BadParameter(f"--engine must be duckdb or spark, got {engine!r}")
    try:
        compiled = build(resolve_spec(ruleset))
    except RulesError as e:
        typer.echo(f"error [{e.code}]: {e}", err=True)
        raise typer.Exit(1) from None
    models = Models.load(Registry(settings.tracking_uri, settings.mlflow_artifacts_dir), threads=0)
    with Progress(console=console, transient=True, disable=as_json) as bar:
        task = bar.add_task(f"scoring clients ({engine})", total=None)
        try:
            summary = score_population(settings.features_dir, models, compiled, load_vocabulary(),
                                       out or settings.home / "scores" / "decisions.parquet", chunk,
                                       lambda done, total: bar.update(task, completed=done, total=total),
                                       engine=engine, spark_master=settings.spark_master,
                                       register=Register.load(settings.lifecycle_dir))
        except SparkUnavailableError as e:
            typer.echo(f"error [{e.code}]: {e}", err=True)
            raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        console.print(f"scored {summary['clients']:,} clients as of {summary['as_of']} into {summary['out']} in "
                      f"{summary['seconds_total']} s ({summary['seconds']})")


events_app = typer.Typer(help="Client events in real time: apply them, consume them from a message broker.",
                         no_args_is_help=True)


@events_app.command("apply")
def apply_events() -> None:
    """Apply accepted client events to the online store and raise the alerts they trigger, until SIGTERM or
    Ctrl-C. `crm serve` runs one beside its workers; run it yourself when the API runs with
    CRM_EVENTS_APPLIER=none (for example as a service of its own). Several at once are safe: one applies at a
    time."""
    import logging

    from service.applier_process import run_until_stopped

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    run_until_stopped(get_settings())


@events_app.command("consume")
def consume_events(
    source: Annotated[str, typer.Option("--from", help="NATS server with JetStream, e.g. nats://127.0.0.1:4222.")],
    stream: Annotated[str, typer.Option(help="JetStream stream (created over --subject if missing).")] = "CRM_EVENTS",
    subject: Annotated[str, typer.Option(help="Subjects the events are published on.")] = "crm.events.>",
    durable: Annotated[str, typer.Option(help="Durable consumer name: a restart resumes where it stopped.")] = (
        "crm-events"),
    batch: Annotated[int, typer.Option(min=1, max=5000, help="Messages fetched at a time.")] = 500,
    apply_timeout: Annotated[float, typer.Option(help="Seconds to wait for a batch to be applied before asking "
                                                 "for redelivery.")] = 10.0,
) -> None:
    """Consume client events from NATS JetStream, acknowledging each message only once its events are applied
    to the online store (a message that breaks the raw contract is terminated and logged)."""
    import asyncio
    import logging

    from service.consumer import consume

    if not source.startswith(("nats://", "tls://")):
        raise typer.BadParameter("--from takes a NATS URL (nats://HOST:4222)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stats = asyncio.run(consume(get_settings(), source, stream, subject, durable, batch, apply_timeout))
    console.print(f"stopped: {stats.acknowledged:,} messages applied and acknowledged, {stats.rejected:,} refused, "
                  f"{stats.redelivery_asked:,} left for redelivery")
