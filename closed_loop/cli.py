"""`crm simulate policies`: the closed loop of the engine and the synthetic world, once per policy."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from config import get_settings

simulate_app = typer.Typer(help="The engine in the synthetic world: policies judged against the best possible.",
                           no_args_is_help=True)


def run_policies(months: int, capacity: int, policies: tuple[str, ...] | None = None, quiet: bool = False):
    """Load the champions and the active ruleset, run the loop and return its :class:`LoopRun`."""
    from closed_loop.engine import POLICIES, Engine
    from closed_loop.loop import run_loop, world_config
    from rules.cli import resolve_spec
    from rules.engine import build
    from rules.vocabulary import load_vocabulary

    settings = get_settings()
    world_config(settings.raw_dir, months)  # refuses a home without a generated world before loading anything
    vocabulary = load_vocabulary()
    engine = Engine.load(settings, build(resolve_spec("active"), vocabulary), vocabulary)

    def progress(message: str) -> None:
        if not quiet:
            typer.echo(message, err=True)

    return run_loop(settings, engine, months, capacity, policies or POLICIES, progress)


@simulate_app.command("policies")
def policies_command(
    months: Annotated[int, typer.Option(help="Months to run the world forward from the end of its history.")] = 3,
    capacity: Annotated[int, typer.Option(help="Actions each broker delivers a month at most.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    html: Annotated[Path | None, typer.Option(help="Write an HTML report plotting the policies side by side.")] = None,
    policy: Annotated[list[str] | None, typer.Option(
        help="Run only these policies (repeat the option); none, random, rules, uplift, oracle by default.")] = None,
) -> None:
    """Run the synthetic world forward MONTHS months once per policy with the engine deciding each month-end
    (features from what the world produced, every client that can be kept decided, each broker's queue filled
    within CAPACITY actions a month) and compare clients lost, assets kept, actions, cost and net gain."""
    from closed_loop.loop import LoopError, record
    from closed_loop.report import write_report
    from rules.errors import RulesError

    try:
        run = run_policies(months, capacity, tuple(policy) if policy else None, quiet=as_json)
    except (LoopError, RulesError, ValueError) as error:
        code = getattr(error, "code", "closed_loop_invalid")
        typer.echo(f"error [{code}]: {error}", err=True)
        raise typer.Exit(1) from None
    settings = get_settings()
    out = settings.home / "closed-loop" / "last-run.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record(run), indent=2) + "\n")
    if html is not None:
        write_report(run, html)
    result = run.as_json()
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    _print_table(result, run)
    if html is not None:
        typer.echo(f"report: {html}")


def _print_table(result: dict, run) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Closed loop: {run.world['clients']:,} clients (seed {run.world['seed']}), "
                        f"{result['months']} month(s) from {run.world['loop_from']}, "
                        f"{result['capacity']} actions per broker a month")
    for column in ("policy", "clients lost", "assets kept (yuan)", "actions delivered", "cost (yuan)",
                   "net gain vs none (yuan)"):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for name, p in result["policies"].items():
        gain = p["net_gain_vs_none_yuan"]
        table.add_row(name, f"{p['clients_lost']:,}", f"{p['assets_kept_yuan']:,.0f}", f"{p['actions_delivered']:,}",
                      f"{p['cost_yuan']:,.0f}", "" if gain is None else f"{gain:,.0f}")
    console = Console(file=sys.stdout)
    console.print(table)
    for name in ("uplift", "rules"):
        share = result[f"{name}_share_of_oracle"]
        if share is not None:
            console.print(f"{name}: {share:.1%} of the oracle's net gain")
    console.print(f"seconds: {run.seconds}")
