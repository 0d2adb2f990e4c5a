"""The one command-line entry point, `crm`; each package contributes its own subcommands."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from config import get_settings
from config.console import quiet_library_warnings
from features.cli import data_app, features_app, report_app
from model_registry.cli import models_app
from rules.cli import rules_app
from service.cli import (
    bench,
    decide_command,
    events_app,
    keys_app,
    rules_activate,
    rules_approve,
    rules_reject,
    rules_submit,
    score_app,
    serve,
    simulate,
)
from service.nba_cli import experiments_app, lifecycle_app, outcomes_app, queue_app
from training.cli import drift, evaluate, promote, train

# Library deprecations that users of the CLI cannot act on (each named with its cause in config/console.py).
quiet_library_warnings()
# MLflow draws a progress bar for every small artifact download; the CLI reports its own progress.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# MLflow logs its database set-up at INFO ("Creating initial MLflow database tables..."); problems still show.
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

app = typer.Typer(
    name="crm",
    help="Client decision engine for securities brokerages: data, indicators, models, rules and the decision API.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(data_app, name="data")
app.add_typer(features_app, name="features")
app.add_typer(report_app, name="report")
app.command("train")(train)
models_app.command("promote")(promote)
models_app.command("evaluate")(evaluate)
models_app.command("drift")(drift)
app.add_typer(models_app, name="models")
rules_app.command("simulate")(simulate)
rules_app.command("bench")(bench)
# Maker-checker acts as the holder of a compliance key, which the serving side checks.
rules_app.command("submit")(rules_submit)
rules_app.command("approve")(rules_approve)
rules_app.command("reject")(rules_reject)
rules_app.command("activate")(rules_activate)
app.add_typer(rules_app, name="rules")
app.add_typer(keys_app, name="keys")
app.command("serve")(serve)
app.command("decide")(decide_command)
app.add_typer(score_app, name="score")
app.add_typer(events_app, name="events")
app.add_typer(lifecycle_app, name="lifecycle")
app.add_typer(queue_app, name="queue")
app.add_typer(outcomes_app, name="outcomes")
app.add_typer(experiments_app, name="experiments")


@app.command("demo")
def demo(
    serve: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve the API at the end.")] = True,
    clients: Annotated[int, typer.Option(help="Clients in the demo world.")] = 20_000,
    months: Annotated[int, typer.Option(help="Months of history.")] = 24,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
) -> None:
    """Build the demo: generate the world, print its profile, build, apply and materialize the indicators,
    train the three models and the retention uplift model and set their champions, activate the bundled ruleset,
    record why lost clients left and plan today's work queues."""
    from features.cli import features_apply, features_build, features_catalog, features_materialize, generate, profile

    generate(clients=clients, months=months, seed=seed, start="2024-01", branches=15)
    profile(as_json=False, html=None)
    features_build()
    features_apply()
    features_materialize()
    features_catalog(as_json=False, out=None)
    _train_and_promote()
    _activate_bundled_rules()
    from service.nba_cli import lifecycle_record, queue_plan

    lifecycle_record(as_json=False)
    queue_plan(date=None, as_json=False)
    if serve:
        _serve_demo()


def _train_and_promote() -> None:
    """Train every model of the list; a model's first version is its champion, a later one goes through the gate."""
    from model_registry.errors import PromotionRefusedError
    from model_registry.registry import CHALLENGER, Registry
    from model_registry.specs import model_names
    from training.cli import ALL
    from training.promotion import promote as run_gate

    train(ALL)
    settings = get_settings()
    registry = Registry(settings.tracking_uri, settings.mlflow_artifacts_dir)
    for name in model_names():
        if registry.alias_version(name, CHALLENGER) is not None:
            try:
                typer.echo(run_gate(name, settings).reason)
            except PromotionRefusedError as error:
                typer.echo(f"{name}: champion kept; {error}")


def _serve_demo() -> None:
    """Create a demo front-office key, say how to call the API, and serve it on the embedded defaults."""
    from service.cli import _service_db, serve
    from service.keys import Role, create_key

    settings = get_settings()
    _, key = create_key(_service_db(), Role.FRONT_OFFICE, "demo-front-office")
    base = f"http://{settings.host}:{settings.port}"
    typer.echo(f"""
The decision API is starting on {base}
  docs (OpenAPI):      {base}/docs
  demo front-office key (shown once; more with `crm keys create --role ROLE --name NAME`):
    {key}
  try:
    curl -s -X POST {base}/v1/decisions -H 'Authorization: Bearer {key}' \\
         -H 'Content-Type: application/json' -d '{{"client_id": "C0000003"}}'
Stop with Ctrl-C.
""")
    serve(host=None, port=None, workers=None)


def _activate_bundled_rules() -> None:
    """Put the bundled ruleset through maker-checker exactly as officers do with `crm rules submit|approve|activate
    --key`: one demo compliance key submits, a second one approves and activates (the history records the keys'
    names), unless a ruleset is already active."""
    from rules.cli import history
    from rules.model import load_ruleset
    from service.cli import _service_db, compliance_officer
    from service.keys import Role, create_key

    store = history()
    active = store.active_version()
    if active is not None:
        typer.echo(f"ruleset {active[:12]} is active; the demo leaves it")
        return
    engine = _service_db()
    author = compliance_officer(create_key(engine, Role.COMPLIANCE, "demo-author")[1])
    approver = compliance_officer(create_key(engine, Role.COMPLIANCE, "demo-compliance")[1])
    spec = load_ruleset()
    versions = {s.version: s for s in store.states()}
    if spec.version not in versions:
        store.submit(spec, author, "bundled service policy (demo)")
    if spec.version not in versions or versions[spec.version].status.value == "submitted":
        store.approve(spec.version, approver, "demo approval by a second officer")
    store.activate(spec.version, approver, "demo activation")
    typer.echo(f"ruleset {spec.version[:12]} submitted with the compliance key of {author}, approved and activated "
               f"with the key of {approver}")


if __name__ == "__main__":
    app()
