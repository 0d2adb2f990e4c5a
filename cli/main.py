"""The one command-line entry point, `crm`; each package contributes its own subcommands."""

from __future__ import annotations

import warnings
from typing import Annotated

import typer

from features.cli import data_app, features_app, report_app

# Libraries under Feast (ibis on DuckDB 2) announce API changes that users of the CLI cannot act on.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ibis\..*")

app = typer.Typer(
    name="crm",
    help="Client decision engine for securities brokerages: data, indicators, models, rules and the decision API.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(data_app, name="data")
app.add_typer(features_app, name="features")
app.add_typer(report_app, name="report")


@app.command("demo")
def demo(
    serve: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve the API at the end.")] = True,
    clients: Annotated[int, typer.Option(help="Clients in the demo world.")] = 20_000,
    months: Annotated[int, typer.Option(help="Months of history.")] = 24,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
) -> None:
    """Build the demo: generate the world, print its profile, build, apply and materialize the indicators."""
    from features.cli import features_apply, features_build, features_catalog, features_materialize, generate, profile

    generate(clients=clients, months=months, seed=seed, start="2024-01", branches=15)
    profile(as_json=False, html=None)
    features_build()
    features_apply()
    features_materialize()
    features_catalog(as_json=False, out=None)
    if serve:
        typer.echo("The decision API is not part of this build yet; the demo world is ready in CRM_HOME.")


if __name__ == "__main__":
    app()
