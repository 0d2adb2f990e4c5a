"""`crm models list`: registered versions, aliases and key metrics."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from config import get_settings

models_app = typer.Typer(help="Registered models: list, promote through the gate, evaluate against the truth.",
                         no_args_is_help=True)


@models_app.command("list")
def list_models(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Every version of every model with its aliases, key metric and ONNX parity."""
    from model_registry.registry import Registry
    from model_registry.specs import model_names, model_spec

    settings = get_settings()
    registry = Registry(settings.tracking_uri, settings.mlflow_artifacts_dir)
    versions = {name: registry.versions(name) for name in model_names()}
    if as_json:
        typer.echo(json.dumps({n: [v.as_dict() for v in vs] for n, vs in versions.items()}, indent=2))
        return
    table = Table(title=f"Registered models ({settings.tracking_uri})")
    for header in ("model", "version", "aliases", "key metric", "value", "ONNX parity", "feature service",
                   "test window"):
        table.add_column(header)
    for name, found in versions.items():
        for v in found:
            metric = model_spec(name).key_metric
            table.add_row(name, str(v.version), ", ".join(v.aliases), metric,
                          f"{v.metrics.get(metric, float('nan')):.4f}", v.tags.get("onnx_parity_max_abs_diff", ""),
                          v.tags.get("feature_service", ""), v.tags.get("window_test", ""))
        if not found:
            table.add_row(name, "-", "", "", "", "", "", "no versions: run `crm train`")
    Console(width=200).print(table)


@models_app.command("upgrade-db")
def upgrade_db() -> None:
    """Upgrade MLflow's tables at CRM_MLFLOW_TRACKING_URI to the installed MLflow (after upgrading the product).
    Back the database up first: the migrations are not reversible."""
    from model_registry.registry import upgrade_tracking_schema

    uri = get_settings().tracking_uri
    try:
        result = upgrade_tracking_schema(uri)
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    if result["found"] is None:
        typer.echo("MLflow's tables are not there yet: they are created on first use")
    elif result["found"] == result["now"]:
        typer.echo(f"MLflow's schema is current ({result['now']})")
    else:
        typer.echo(f"MLflow's schema upgraded from {result['found']} to {result['now']}")
