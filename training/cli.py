"""`crm train …`, `crm models promote NAME`, `crm models evaluate`."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console

from config import get_settings

console = Console(stderr=True)


class Which(StrEnum):
    all = "all"
    churn = "churn"
    value = "value"
    risk = "risk"


MODEL_OF = {"churn": "churn", "value": "value", "risk": "risk_profile", "risk_profile": "risk_profile"}


def train(which: Annotated[Which, typer.Argument(help="Which model to train.")] = Which.all) -> None:
    """Train models on Feast training sets, check ONNX parity and register them in MLflow.

    The first version of a model becomes its champion; later versions are challengers (see `crm models promote`).
    """
    from model_registry.errors import ModelRegistryError
    from training.pipeline import train as train_model

    settings = get_settings()
    names = ["churn", "value", "risk_profile"] if which == Which.all else [MODEL_OF[which.value]]
    with console.status("training") as status:
        for name in names:
            try:
                version = train_model(name, settings, progress=lambda line: status.update(line) or console.print(
                    f"  {line}", soft_wrap=True))
            except ModelRegistryError as error:
                console.print(f"[red]{error.code}[/red]: {error}", soft_wrap=True)
                raise typer.Exit(code=1) from None
            except FileNotFoundError as error:
                console.print(f"[red]missing data[/red]: {error}; run `crm features build` and "
                              "`crm features apply` first", soft_wrap=True)
                raise typer.Exit(code=1) from None
            console.print(f"[green]{name}[/green] v{version.version} ({', '.join(version.aliases) or 'no alias'})")


def promote(name: Annotated[str, typer.Argument(help="churn, value or risk_profile (or risk).")]) -> None:
    """Make the challenger the champion if it passes parity and is not worse on the same test window."""
    from model_registry.errors import ModelRegistryError
    from training.promotion import promote as run_gate

    if name not in MODEL_OF:
        raise typer.BadParameter(f"unknown model {name!r}; use churn, value or risk_profile")
    try:
        result = run_gate(MODEL_OF[name], get_settings())
    except ModelRegistryError as error:
        console.print(f"[red]{error.code}[/red]: {error}", soft_wrap=True)
        raise typer.Exit(code=1) from None
    console.print(f"[green]{result.reason}[/green]", soft_wrap=True)


def evaluate(as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False) -> None:
    """Champions on their test windows against the synthetic world's ground truth (the best possible)."""
    from model_registry.errors import ModelRegistryError
    from training.evaluation import evaluate as run

    try:
        report = run(get_settings())
    except (ModelRegistryError, FileNotFoundError) as error:
        console.print(f"[red]cannot evaluate[/red]: {error}", soft_wrap=True)
        raise typer.Exit(code=1) from None
    shape = {"churn": ("auc", "oracle_auc", "cause_accuracy"), "value": ("spearman",),
             "risk_profile": ("accuracy", "questionnaire_accuracy")}
    figures = {model: {k: report[model][k] for k in keys} for model, keys in shape.items()}
    if as_json:
        typer.echo(json.dumps(figures))
        return
    churn, value, risk = report["churn"], report["value"], report["risk_profile"]
    typer.echo(f"churn:        AUC {churn['auc']:.4f} vs oracle {churn['oracle_auc']:.4f} "
               f"(gap {churn['oracle_auc'] - churn['auc']:.4f}, {churn['test_rows']:,} client-months); "
               f"cause accuracy {churn['cause_accuracy']:.3f} over {churn['true_churners']:,} true churners")
    typer.echo(f"value:        Spearman {value['spearman']:.4f} ({value['test_rows']:,} client-months)")
    typer.echo(f"risk_profile: accuracy vs truth {risk['accuracy']:.4f}; the questionnaire's own "
               f"{risk['questionnaire_accuracy']:.4f} ({risk['test_rows']:,} client-months)")
