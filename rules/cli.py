"""`crm rules`: validate, test, submit, approve, activate, render, diff and trace the decision tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table as RichTable

from config import get_settings
from rules.errors import RulesError
from rules.model import BUNDLED, RulesetSpec

if TYPE_CHECKING:  # SQLAlchemy is imported only by the commands that use the history
    from rules.governance import RulesHistory

rules_app = typer.Typer(help="Decision tables: validate, test, submit, approve, activate, render, diff, simulate.",
                        no_args_is_help=True)
console = Console()

PathArg = Annotated[Path, typer.Argument(help="Ruleset folder (ruleset.yaml and its tables); default the bundled "
                                              "ruleset.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def history() -> RulesHistory:
    from rules.governance import RulesHistory

    settings = get_settings()
    settings.ensure_home()
    return RulesHistory(settings.rules_history_url)


def _fail(error: Exception) -> typer.Exit:
    typer.echo(f"error [{getattr(error, 'code', 'error')}]: {error}", err=True)
    return typer.Exit(1)


def resolve_spec(ref: str) -> RulesetSpec:
    """A ruleset from a folder, ``active``, ``bundled`` or a stored version (hash or unique prefix)."""
    from rules.model import load_ruleset

    if ref == "bundled":
        return load_ruleset(BUNDLED)
    if Path(ref).exists():
        return load_ruleset(Path(ref))
    store = history()
    if ref == "active":
        version = store.active_version()
        if version is None:
            from rules.errors import NoActiveRulesetError

            raise NoActiveRulesetError()
        return store.load(version)
    return store.load(ref)


def check(spec: RulesetSpec) -> list:
    """Every finding: schema and entries, then gaps, overlaps, masking, suitability and golden cases."""
    from rules.analysis import validate

    return validate(spec)


@rules_app.command("validate")
def validate(path: PathArg = BUNDLED, as_json: JsonOpt = False) -> None:
    """Check a ruleset: types against the vocabulary, every entry, gaps, overlaps, masked rules, suitability and
    golden cases. Exits 1 when anything is found."""
    try:
        spec = resolve_spec(str(path))
    except RulesError as e:
        if as_json:
            typer.echo(json.dumps({"valid": False, "findings": [{"kind": "schema", "message": str(e)}]}, indent=2))
            raise typer.Exit(1) from None
        raise _fail(e) from None
    findings = check(spec)
    if as_json:
        typer.echo(json.dumps({"version": spec.version, "valid": not findings,
                               "findings": [f.as_dict() for f in findings]}, indent=2, ensure_ascii=False))
    else:
        for f in findings:
            typer.echo(f.describe())
        rules = sum(len(t.rules) for t in spec.tables)
        verdict = "valid" if not findings else f"{len(findings)} finding{'s' if len(findings) != 1 else ''}"
        typer.echo(f"{spec.name} {spec.version[:12]}: {len(spec.tables)} tables, {rules} rules — {verdict}")
    if findings:
        raise typer.Exit(1)


@rules_app.command("test")
def run_golden(path: PathArg = BUNDLED) -> None:
    """Run the golden cases written inside each table. Exits 1 when any fails."""
    from rules.analysis import golden_cases
    from rules.engine import compile_ruleset

    try:
        spec = resolve_spec(str(path))
    except RulesError as e:
        raise _fail(e) from None
    ruleset, findings = compile_ruleset(spec)
    if ruleset is None:
        for f in findings:
            typer.echo(f.describe())
        raise typer.Exit(1)
    failed = 0
    for table in ruleset.tables:
        problems = golden_cases(table)
        failed += len(problems)
        total = len(table.spec.tests)
        typer.echo(f"{table.id}: {total - len(problems)}/{total} golden cases pass")
        for f in problems:
            typer.echo(f"  {f.describe()}")
    if failed:
        raise typer.Exit(1)


# Submit, approve, reject and activate act as the holder of a compliance key, which only the serving side can
# check: `crm rules submit|approve|reject|activate` are composed in service/cli.py and call these with the key's
# holder as the actor (never a name typed on the command line).


def submit_as(actor: str, path: Path, note: str) -> None:
    """Submit a valid ruleset for approval as ``actor`` (its author; someone else must approve it)."""
    try:
        spec = resolve_spec(str(path))
        findings = check(spec)
        if findings:
            for f in findings:
                typer.echo(f.describe())
            typer.echo("not submitted: the ruleset does not validate", err=True)
            raise typer.Exit(1)
        event = history().submit(spec, actor, note)
    except RulesError as e:
        raise _fail(e) from None
    typer.echo(f"submitted {spec.version} by {event.actor} (history entry {event.seq}); it needs another "
               "person's approval: crm rules approve " + spec.version[:12] + " --key THEIR_COMPLIANCE_KEY")


def approve_as(actor: str, version: str, note: str) -> None:
    """Approve a submitted version as ``actor``; refused when they are its author."""
    try:
        event = history().approve(version, actor, note)
    except RulesError as e:
        raise _fail(e) from None
    typer.echo(f"approved {event.version} by {event.actor}; activate it with: crm rules activate "
               f"{event.version[:12]}")


def reject_as(actor: str, version: str, note: str) -> None:
    """Reject a submitted version with a reason as ``actor``; refused when they are its author."""
    try:
        event = history().reject(version, actor, note)
    except RulesError as e:
        raise _fail(e) from None
    typer.echo(f"rejected {event.version} by {event.actor}")


def activate_as(actor: str, version: str, note: str) -> None:
    """Make an approved version the active one (the API picks it up), as ``actor``."""
    try:
        event = history().activate(version, actor, note)
    except RulesError as e:
        raise _fail(e) from None
    typer.echo(f"activated {event.version} by {event.actor}")


@rules_app.command("history")
def show_history(as_json: JsonOpt = False) -> None:
    """Every submitted version and every act on it (who, when, what, why), after verifying the chain."""
    store = history()
    problems = store.verify()
    if problems:
        for p in problems:
            typer.echo(f"TAMPERED: {p}", err=True)
        raise typer.Exit(2)
    states, events = store.states(), store.events()
    if as_json:
        typer.echo(json.dumps({"verified": True, "versions": [s.as_dict() for s in states],
                               "events": [e.as_dict() for e in events]}, indent=2, ensure_ascii=False))
        return
    table = RichTable(title="Ruleset versions (history verified)")
    for col in ("version", "status", "author", "submitted", "decided by", "active", "note"):
        table.add_column(col)
    for s in states:
        table.add_row(s.version[:12], s.status.value, s.author, s.submitted_at, s.decided_by or "",
                      "yes" if s.active else "", s.note)
    console.print(table)
    events_table = RichTable(title="History")
    for col in ("#", "at (UTC)", "who", "what", "version", "why"):
        events_table.add_column(col)
    for e in events:
        events_table.add_row(str(e.seq), e.at, e.actor, e.action, e.version[:12], e.note)
    console.print(events_table)


@rules_app.command("verify")
def verify() -> None:
    """Check that the history and the stored versions were not altered. Exits 2 when they were."""
    problems = history().verify()
    for p in problems:
        typer.echo(f"TAMPERED: {p}")
    if problems:
        raise typer.Exit(2)
    typer.echo("rule history verified")


@rules_app.command("export")
def export(ref: Annotated[str, typer.Argument(help="Version, 'active' or 'bundled'.")],
           out: Annotated[Path, typer.Argument(help="Folder to write the YAML files into.")]) -> None:
    """Write a stored version as YAML files, to edit as the next candidate."""
    from rules.model import write_ruleset

    try:
        spec = resolve_spec(ref)
    except RulesError as e:
        raise _fail(e) from None
    write_ruleset(spec, out)
    typer.echo(f"wrote {spec.version[:12]} to {out}")


@rules_app.command("render")
def render(ref: Annotated[str, typer.Argument(help="Folder, version, 'active' or 'bundled'.")] = "bundled",
           out: Annotated[Path | None, typer.Option(help="Output folder; default CRM_HOME/reports/rules.")] = None,
           ) -> None:
    """Write the ruleset as an HTML page for people and DMN 1.3 XML for DMN tools."""
    from rules.render import write_rendering

    try:
        spec = resolve_spec(ref)
    except RulesError as e:
        raise _fail(e) from None
    html_path, dmn_path = write_rendering(spec, out or get_settings().reports_dir / "rules", check(spec))
    typer.echo(f"wrote {html_path}\nwrote {dmn_path}")


@rules_app.command("diff")
def diff(a: Annotated[str, typer.Argument(help="Folder, version, 'active' or 'bundled'.")],
         b: Annotated[str, typer.Argument(help="Folder, version, 'active' or 'bundled'.")],
         as_json: JsonOpt = False) -> None:
    """Rule-level changes from A to B."""
    from rules.diff import diff_rulesets

    try:
        result = diff_rulesets(resolve_spec(a), resolve_spec(b))
    except RulesError as e:
        raise _fail(e) from None
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
        return
    typer.echo(f"{result.old_version[:12]} → {result.new_version[:12]}: "
               f"{len(result.changes)} change{'s' if len(result.changes) != 1 else ''}")
    for line in result.describe():
        typer.echo(f"  {line}")


@rules_app.command("evaluate")
def evaluate(inputs: Annotated[Path, typer.Argument(help="JSON file with one value per vocabulary term.")],
             ref: Annotated[str, typer.Option("--ruleset", help="Folder, version, 'active' or 'bundled'.")] =
             "bundled") -> None:
    """Evaluate a ruleset for one set of inputs and print the decision with its trace."""
    from rules.engine import build

    try:
        values = json.loads(inputs.read_text(encoding="utf-8"))
        decision = build(resolve_spec(ref)).evaluate(values)
    except (RulesError, json.JSONDecodeError, OSError) as e:
        raise _fail(e) from None
    typer.echo(json.dumps(decision.as_dict(), indent=2, ensure_ascii=False))
