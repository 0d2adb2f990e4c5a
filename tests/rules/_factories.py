"""Small decision tables built in code, compiled against a tiny vocabulary."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from rules.engine import InputType, Table, compile_table
from rules.findings import Finding
from rules.model import RulesetSpec, TableSpec, load_ruleset, ruleset_from_canonical

TYPES = {
    "amount": InputType("number", None, False),
    "level": InputType("integer", None, False),
    "band": InputType("string", ("low", "medium", "high"), False),
    "industry": InputType("string", None, False),
    "expired": InputType("boolean", None, False),
}


def make_table(policy: str, inputs: list[str], rules: list[tuple[dict, object]], output_values=None,
               output_type: str = "string", default=None, tests=()) -> Table:
    """A table with one output ``out``; each rule is (entries by input, output value)."""
    spec = TableSpec.model_validate({
        "id": "t", "name": "test table", "description": "built by a test", "hit_policy": policy,
        "inputs": inputs,
        "outputs": [{"name": "out", "type": output_type, **({"values": output_values} if output_values else {})}],
        "rules": [{"id": f"R{i + 1}", "description": f"rule {i + 1}", "when": when, "then": {"out": out}}
                  for i, (when, out) in enumerate(rules)],
        **({"default": {"out": default}} if default is not None else {}),
        "tests": list(tests),
    })
    findings: list[Finding] = []
    table = compile_table(spec, TYPES, {}, findings)
    assert table is not None, [f.describe() for f in findings]
    return table


@cache
def bundled() -> RulesetSpec:
    """The bundled ruleset, read once: specs are frozen, so tests can share it."""
    return load_ruleset()


def edited(edit: Callable[[dict], None], spec: RulesetSpec | None = None) -> RulesetSpec:
    """A copy of the ruleset (bundled by default) with ``edit`` applied to its canonical form, re-validated."""
    doc = (spec or bundled()).canonical()
    edit(doc)
    return ruleset_from_canonical(doc)


def table_doc(doc: dict, table_id: str) -> dict:
    return next(t for t in doc["tables"] if t["id"] == table_id)


def rule_doc(doc: dict, table_id: str, rule_id: str) -> dict:
    return next(r for r in table_doc(doc, table_id)["rules"] if r["id"] == rule_id)
