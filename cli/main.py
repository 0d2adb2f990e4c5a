"""The one command-line entry point, `crm`; each package contributes its own subcommands."""

from __future__ import annotations

from typing import Annotated

import typer

from features.cli import data_app

app = typer.Typer(
    name="crm",
    help="Client decision engine for securities brokerages: data, indicators, models, rules and the decision API.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(data_app, name="data")


@app.command("demo")
def demo(
    serve: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve the API at the end.")] = True,
    clients: Annotated[int, typer.Option(help="Clients in the demo world.")] = 20_000,
    months: Annotated[int, typer.Option(help="Months of history.")] = 24,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
) -> None:
    """Build the demo: generate the world and print its profile (later stages extend this)."""
    from features.cli import generate, profile

    generate(clients=clients, months=months, seed=seed, start="2024-01", branches=15)
    profile(as_json=False, html=None)
    if serve:
        typer.echo("The decision API is not part of this build yet; the demo world is ready in CRM_HOME.")


if __name__ == "__main__":
    app()
