"""`crm train …`, `crm models promote NAME`, `crm models evaluate`."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

from config import get_settings

console = Console(stderr=True)


ALL = "all"


def _names(which: str) -> list[str]:
    """The models ``which`` names: one (by name or alias) or all of them, in the list's order."""
    from model_registry.specs import accepted_names, model_names, model_spec

    if which == ALL:
        return list(model_names())
    try:
        return [model_spec(which).name]
    except KeyError:
        raise typer.BadParameter(f"unknown model {which!r}; use {ALL} or one of {', '.join(accepted_names())}",
                                 param_hint="WHICH") from None


def train(which: Annotated[str, typer.Argument(
        help="all, or one model by name or alias (see `crm models list`).")] = ALL) -> None:
    """Train models on Feast training sets, check ONNX parity and register them in MLflow.

    The first version of a model becomes its champion; later versions are challengers (see `crm models promote`).
    """
    from model_registry.errors import ModelRegistryError
    from model_registry.specs import model_spec
    from training.pipeline import train as train_model

    settings = get_settings()
    names = _names(which)
    with console.status("training") as status:
        for name in names:
            try:
                version = train_model(name, settings, progress=lambda line: status.update(line) or console.print(
                    f"  {line}", soft_wrap=True))
            except ModelRegistryError as error:
                console.print(f"[red]{error.code}[/red]: {error}", soft_wrap=True)
                raise typer.Exit(code=1) from None
            except ValueError as error:
                if not model_spec(name).required and which == ALL:
                    console.print(f"[yellow]{name} not trained[/yellow]: {error}", soft_wrap=True)
                    continue
                console.print(f"[red]cannot train {name}[/red]: {error}", soft_wrap=True)
                raise typer.Exit(code=1) from None
            except FileNotFoundError as error:
                console.print(f"[red]missing data[/red]: {error}; run `crm features build` and "
                              "`crm features apply` first", soft_wrap=True)
                raise typer.Exit(code=1) from None
            console.print(f"[green]{name}[/green] v{version.version} ({', '.join(version.aliases) or 'no alias'})")


def promote(name: Annotated[str, typer.Argument(help="The model, by name or alias (see `crm models list`).")]
            ) -> None:
    """Make the challenger the champion if it passes parity and is not worse on the same test window."""
    from model_registry.errors import ModelRegistryError
    from training.promotion import promote as run_gate

    if name == ALL:
        raise typer.BadParameter("promote one model at a time", param_hint="NAME")
    (model,) = _names(name)
    try:
        result = run_gate(model, get_settings())
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
    # The published figures of each report (a model without an entry here shows its whole report).
    shape = {"churn": ("auc", "oracle_auc", "inputs_ceiling_auc", "cause_accuracy", "cause_recall",
                       "cause_macro_recall", "largest_cause_guess", "cause_ceiling"), "value": ("spearman",),
             "risk_profile": ("accuracy", "questionnaire_accuracy", "behaviour_ceiling_accuracy", "macro_f1"),
             "uplift": ("qini", "oracle_qini", "per_action")}
    figures = {key: {k: figures_of[k] for k in shape[key]} if key in shape else figures_of
               for key, figures_of in report.items()}
    if as_json:
        typer.echo(json.dumps(figures))
        return
    churn, value, risk = report["churn"], report["value"], report["risk_profile"]
    typer.echo(f"churn:        AUC {churn['auc']:.4f} vs oracle {churn['oracle_auc']:.4f} "
               f"(gap {churn['oracle_auc'] - churn['auc']:.4f}, {churn['test_rows']:,} client-months); the inputs' "
               f"ceiling {churn['inputs_ceiling_auc']:.4f}; "
               f"cause accuracy {churn['cause_accuracy']:.3f} over {churn['true_churners']:,} true churners")
    recall = ", ".join(f"{cause} {value:.3f}" for cause, value in churn["cause_recall"].items())
    guess = churn["largest_cause_guess"]
    typer.echo(f"              cause recall {recall}; macro {churn['cause_macro_recall']:.3f} "
               f"(always guessing {guess['cause']}: accuracy {guess['cause_accuracy']:.3f}, "
               f"macro recall {guess['cause_macro_recall']:.3f}); the inputs' ceiling: macro "
               f"{churn['cause_ceiling']['cause_macro_recall']:.3f}")
    typer.echo(f"value:        Spearman {value['spearman']:.4f} ({value['test_rows']:,} client-months)")
    f1 = risk["macro_f1"]
    typer.echo(f"risk_profile: accuracy vs truth {risk['accuracy']:.4f}; the questionnaire's own "
               f"{risk['questionnaire_accuracy']:.4f}; the behaviour ceiling {risk['behaviour_ceiling_accuracy']:.4f} "
               f"({risk['test_rows']:,} client-months)")
    typer.echo(f"              macro F1 {f1['champion']:.4f}; questionnaire {f1['questionnaire']:.4f}; "
               f"ceiling {f1['behaviour_ceiling']:.4f}")
    if "uplift" in report:
        uplift = report["uplift"]
        typer.echo(f"uplift:       Qini {uplift['qini']:.5f} vs oracle {uplift['oracle_qini']:.5f} "
                   f"({uplift['share_of_oracle']:.2f} of the oracle, {uplift['test_rows']:,} client-months)")
        for action, figures_of in uplift["per_action"].items():
            share = figures_of["qini"] / figures_of["oracle_qini"] if figures_of["oracle_qini"] else float("nan")
            typer.echo(f"              {action:<28} Qini {figures_of['qini']:.5f} vs oracle "
                       f"{figures_of['oracle_qini']:.5f} ({share:.2f})")


def drift(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    html: Annotated[str | None, typer.Option("--html", help="Also write an HTML report with charts to this file.")]
    = None,
    from_date: Annotated[str | None, typer.Option("--from", help="Reference as-of date (YYYY-MM-DD); default the "
                                                  "model's training window.")] = None,
    to_date: Annotated[str | None, typer.Option("--to", help="Current as-of date (YYYY-MM-DD); default the "
                                                "latest.")] = None,
) -> None:
    """Population stability of every champion's inputs and score, and its realised performance.

    Bands: PSI below 0.1 stable, 0.1-0.25 watch, above 0.25 act. Logged to the model's MLflow run and written to
    $CRM_HOME/monitoring/drift.json for the API's metrics.
    """
    import datetime as dt

    from model_registry.errors import ModelRegistryError
    from training.drift import drift_report

    def parse(value: str | None, option: str) -> dt.date | None:
        if value is None:
            return None
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint=option) from None

    settings = get_settings()
    try:
        with console.status("measuring drift") as status:
            report = drift_report(settings, parse(from_date, "--from"), parse(to_date, "--to"),
                                  progress=lambda line: status.update(line))
    except (ModelRegistryError, FileNotFoundError, ValueError) as error:
        console.print(f"[red]cannot measure drift[/red]: {error}", soft_wrap=True)
        raise typer.Exit(code=1) from None
    if html:
        from training.drift_html import write_html

        write_html(report, html)
    if as_json:
        typer.echo(json.dumps([d.as_dict() for d in report]))
        return
    for d in report:
        p = d.performance
        latest = "—" if p is None or p.latest_value is None else f"{p.latest_value:.4f}"
        test = "—" if p is None or p.test_value is None else f"{p.test_value:.4f}"
        counts = d.indicator_bands
        typer.echo(f"{d.model} v{d.version}: {d.band.upper()}  score PSI {d.score_psi:.3f} ({d.score_band}); "
                   f"indicators {counts['stable']} stable, {counts['watch']} watch, {counts['act']} act "
                   f"({d.current}, {d.current_rows:,} clients, vs {d.reference}, {d.reference_rows:,} client-months)")
        worst = sorted(d.indicators.items(), key=lambda kv: -kv[1])[:5]
        typer.echo("  largest: " + ", ".join(f"{k} {v:.3f}" for k, v in worst))
        if p is not None:
            typer.echo(f"  {p.metric}: test window {p.test_window} {test}; latest labelled {p.latest_window} "
                       f"{latest} ({p.latest_rows:,} client-months)")
