"""Small decision tables built in code, compiled against a tiny vocabulary."""

from __future__ import annotations

from rules.engine import InputType, Table, compile_table
from rules.findings import Finding
from rules.model import TableSpec

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
