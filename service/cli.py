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
    population = load_population(settings.features_dir, settings.home / "scores", models, load_vocabulary())
    report = run(active, cand, population)
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
    for title, counts in (("Actions", report.actions), ("Alerts", report.alerts)):
        t = RichTable(title=f"{title} (clients)")
        for col in ("", "active", "candidate", "change"):
            t.add_column(col, justify="right" if col else "left")
        for name, c in counts.items():
            t.add_row(name, f"{c['active']:,}", f"{c['candidate']:,}", f"{c['candidate'] - c['active']:+,}")
        console.print(t)
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
    from service.scoring import Models
    from service.simulation import load_population
    from service.simulation import simulate as run

    settings = get_settings()
    compiled = build(resolve_spec(ruleset))
    started = time.perf_counter()
    models = Models.load(Registry(settings.tracking_uri, settings.mlflow_artifacts_dir), threads=0)
    loaded = time.perf_counter()
    population = load_population(settings.features_dir, settings.home / "scores", models, load_vocabulary())
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
