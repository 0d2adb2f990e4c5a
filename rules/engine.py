"""The evaluator: a ruleset compiled against the vocabulary into Python functions, run table after table.

Each table's input entries are turned into one generated Python function that returns the indices of the
matching rules (or the first one, under FIRST); the hit policy then picks or collects outputs by DMN semantics.
Single-hit tables' outputs become inputs of the tables after them, so tier → package → actions → alerts chain.
Every evaluation records which rules of which tables fired and the input values they saw.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from rules.errors import HitPolicyViolation, InputError, RuleFileError
from rules.findings import Finding, Kind
from rules.model import HitPolicy, OutputSpec, RulesetSpec, TableSpec
from rules.unary import Condition, EntryError, TermType, any_condition, parse
from rules.vocabulary import Vocabulary, load_vocabulary

_PYTHON_TYPES: dict[str, tuple[type, ...]] = {"number": (int, float), "integer": (int,), "string": (str,),
                                              "boolean": (bool,)}


@dataclass(frozen=True)
class InputType:
    """The type of a table input: a vocabulary term, or an output of an earlier table (which may be null)."""

    type: TermType
    values: tuple[str, ...] | None
    nullable: bool


def check_value(value: object, type: TermType, values: tuple[str, ...] | None = None) -> object:
    """The value if it fits the type (ints are accepted as numbers); raises ValueError saying why not."""
    if isinstance(value, bool) and type != "boolean":
        raise ValueError(f"{value!r} is a boolean, expected {type}")
    if not isinstance(value, _PYTHON_TYPES[type]):
        if type == "integer" and isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError(f"{value!r} is not {'an' if type == 'integer' else 'a'} {type}")
    if values is not None and value not in values:
        raise ValueError(f"{value!r} is not one of {', '.join(values)}")
    return value


@dataclass
class Table:
    """One compiled decision table."""

    spec: TableSpec
    input_types: dict[str, InputType]
    conditions: list[list[Condition]]  # [rule][input]
    outputs: list[tuple]  # [rule] output values in output order
    default: tuple | None
    priority: list[tuple]  # [rule] position of each output value in its values list (lower wins)
    match: Callable[[Mapping[str, object]], list[int]] = field(repr=False)

    def __post_init__(self) -> None:
        # Plain attributes: enum and model attribute lookups cost more than the whole match.
        self.id = self.spec.id
        self.kind = self.spec.hit_policy.value
        self.single = self.spec.hit_policy.single_hit
        self.aggregator = self.spec.hit_policy.aggregator
        self.names = tuple(o.name for o in self.spec.outputs)
        self.inputs = self.spec.inputs
        self.ids = tuple(r.id for r in self.spec.rules)
        self.empty = dict(zip(self.names, self.default if self.default is not None else (None,) * len(self.names),
                              strict=True))

    @property
    def policy(self) -> HitPolicy:
        return self.spec.hit_policy

    def rule_ids(self, hits: list[int]) -> list[str]:
        return [self.ids[i] for i in hits]

    def run(self, ctx: Mapping[str, object]) -> tuple[dict[str, object], list[int]]:
        """This table alone: its result and the rules that decided it (golden cases, tests). A whole ruleset is
        evaluated by the one generated function of :class:`Ruleset`."""
        return self.resolve(self.match(ctx))

    def resolve(self, hits: list[int]) -> tuple[dict[str, object], list[int]]:
        """The table result for these matching rules, and the rules that decided it."""
        kind = self.kind
        if self.single:
            if not hits:
                return dict(self.empty), []
            if kind == "FIRST":
                chosen = hits[0]
            elif kind == "UNIQUE":
                if len(hits) > 1:
                    raise HitPolicyViolation(self.id, kind, self.rule_ids(hits))
                chosen = hits[0]
            elif kind == "ANY":
                if len({self.outputs[i] for i in hits}) > 1:
                    raise HitPolicyViolation(self.id, kind, self.rule_ids(hits))
                chosen = hits[0]
            else:  # PRIORITY: the highest-priority output; among equals the first rule
                chosen = min(hits, key=self._rank)
            return dict(zip(self.names, self.outputs[chosen], strict=True)), [chosen]
        if kind == "OUTPUT ORDER":
            hits = sorted(hits, key=self._rank)
        aggregator = self.aggregator
        if aggregator is None:
            if len(self.names) == 1:
                return {self.names[0]: [self.outputs[i][0] for i in hits]}, hits
            return {n: [self.outputs[i][k] for i in hits] for k, n in enumerate(self.names)}, hits
        values = [self.outputs[i][0] for i in hits]
        if aggregator == "COUNT":
            result: object = len(values)
        elif not values:
            result = None
        else:
            result = {"SUM": sum, "MIN": min, "MAX": max}[aggregator](values)
        return {self.names[0]: result}, hits

    def _rank(self, i: int) -> tuple:
        return (self.priority[i], i)


class TableTrace(NamedTuple):
    """What one table did in one evaluation (a named tuple: one is made per table per decision)."""

    table: str
    fired: tuple[str, ...]  # ids of the rules that gave the result (every matching rule for multi-hit tables)
    inputs: dict[str, object]
    result: dict[str, object]

    def as_dict(self) -> dict:
        return {"table": self.table, "fired": list(self.fired), "inputs": self.inputs, "result": self.result}


class Decision:
    """The ruleset's decision for one client; per-table results and the trace are built when first read."""

    __slots__ = ("_fired", "_inputs", "_results", "_ruleset", "_trace", "_values", "actions", "alerts", "package",
                 "tier", "version")

    def __init__(self, ruleset: Ruleset, inputs: Mapping[str, object], out: tuple) -> None:
        self._ruleset = ruleset
        self.version = ruleset.version
        self._inputs = inputs
        self.tier, self.package, self.actions, self.alerts, self._values, self._fired = out
        self._results: dict[str, dict[str, object]] | None = None
        self._trace: tuple[TableTrace, ...] | None = None

    @property
    def results(self) -> dict[str, dict[str, object]]:
        """Each table's result: output → value (a list for multi-hit tables)."""
        if self._results is None:
            self._results = {t.id: dict(zip(t.names, values, strict=True))
                             for t, values in zip(self._ruleset.tables, self._values, strict=True)}
        return self._results

    @property
    def trace(self) -> tuple[TableTrace, ...]:
        """Which rules of which tables fired, with the input values each table saw."""
        if self._trace is None:
            results = self.results
            ctx = dict(self._inputs)
            for t in self._ruleset.tables:  # earlier single-hit outputs are inputs of later tables
                if t.single:
                    ctx.update(results[t.id])
            self._trace = tuple(
                TableTrace(t.id, tuple(t.ids[i] for i in fired), {n: ctx[n] for n in t.inputs}, results[t.id])
                for t, fired in zip(self._ruleset.tables, self._fired, strict=True))
        return self._trace

    @property
    def fired(self) -> list[tuple[str, tuple[str, ...]]]:
        """(table, ids of the rules that fired) for every table, without building the trace."""
        return [(t.id, tuple(t.ids[i] for i in fired)) for t, fired in zip(self._ruleset.tables, self._fired,
                                                                         strict=True)]

    @property
    def fired_rules(self) -> list[str]:
        return [f"{t.id}/{t.ids[i]}" for t, fired in zip(self._ruleset.tables, self._fired, strict=True)
                for i in fired]

    def as_dict(self) -> dict:
        return {"version": self.version, "tier": self.tier, "package": self.package, "actions": list(self.actions),
                "alerts": list(self.alerts), "results": self.results,
                "trace": [t.as_dict() for t in self.trace]}


class Ruleset:
    """A ruleset ready to evaluate; build with :func:`compile_ruleset`.

    The whole ruleset is generated as one Python function: inputs are read once into locals, each table is a
    chain of plain comparisons, single-hit outputs flow to later tables as locals; only what a decision reports
    is built. This keeps one client's evaluation within microseconds.
    """

    def __init__(self, spec: RulesetSpec, tables: list[Table], terms: dict[str, InputType]) -> None:
        self.spec = spec
        self.version = spec.version
        self.tables = tables
        self.terms = terms  # vocabulary terms read by some table
        self._by_id = {t.id: t for t in tables}
        self.descriptions = {(t.id, r.id): r.description for t in tables for r in t.spec.rules}
        self._checks = [(n, _PYTHON_TYPES[t.type], t.type, t.values) for n, t in terms.items()]
        self.source = _ruleset_source(self, checked=False)
        self._run = self._compile(self.source)
        self._run_checked = self._compile(_ruleset_source(self, checked=True))

    def _compile(self, source: str) -> Callable[[Mapping[str, object]], tuple]:
        namespace: dict[str, object] = {f"T{k}": t for k, t in enumerate(self.tables)}
        namespace |= {f"OUT{k}": tuple(t.outputs) for k, t in enumerate(self.tables)}
        namespace |= {"INVALID": _Invalid, "NUMBER": (float, int)}
        exec(compile(source, f"<ruleset {self.version[:12]}>", "exec"), namespace)
        return namespace["evaluate"]  # type: ignore[return-value]

    def table(self, table_id: str) -> Table:
        return self._by_id[table_id]

    def check_inputs(self, inputs: Mapping[str, object]) -> None:
        """Raise :class:`InputError` naming every missing, null or wrongly typed input."""
        problems = []
        for name, types, type_, values in self._checks:
            if name not in inputs:
                problems.append(f"{name}: missing")
                continue
            value = inputs[name]
            if not isinstance(value, types) or (isinstance(value, bool) and type_ != "boolean"):
                try:
                    check_value(value, type_, values)
                except ValueError as e:
                    problems.append(f"{name}: {e}")
            elif values is not None and value not in values:
                problems.append(f"{name}: {value!r} is not one of {', '.join(values)}")
            elif value != value:
                problems.append(f"{name}: NaN is not a number a rule can test")
        if problems:
            raise InputError("invalid rule inputs: " + "; ".join(problems))

    def evaluate(self, inputs: Mapping[str, object], check: bool = True) -> Decision:
        """Evaluate every table in order; ``check=False`` skips the input check for values already typed."""
        if not check:
            return Decision(self, inputs, self._run(inputs))
        try:
            return Decision(self, inputs, self._run_checked(inputs))
        except (_Invalid, KeyError, TypeError):
            self.check_inputs(inputs)  # raises, naming every problem
        # Acceptable but not exact (an integer written as 3.0): evaluate the converted values.
        converted = {**inputs, **{n: int(inputs[n]) for n, t in self.terms.items()  # type: ignore[call-overload]
                                  if t.type == "integer" and isinstance(inputs[n], float)}}
        return Decision(self, converted, self._run(converted))


class _Invalid(Exception):
    """Raised by the generated code's own type checks; the evaluator then says exactly what was wrong."""


def _type_test(var: str, t: InputType) -> str:
    """A Python condition true when ``var`` does NOT fit the term (the fast path of the input check)."""
    if t.type == "number":
        return f"{var}.__class__ not in NUMBER or {var} != {var}"
    if t.type == "integer":
        return f"{var}.__class__ is not int"
    if t.type == "boolean":
        return f"{var}.__class__ is not bool"
    if t.values is not None:
        return f"{var} not in {{{', '.join(repr(v) for v in t.values)}}}"
    return f"{var}.__class__ is not str"


def _ruleset_source(ruleset: Ruleset, checked: bool) -> str:
    """Source of ``evaluate(x) -> (tier, package, actions, alerts, per-table values, per-table fired)``; the
    checked variant also refuses values that do not fit their term (exact types: the fast path)."""
    tables = ruleset.tables
    local = {}
    lines = ["def evaluate(x):"]
    for n, t in ruleset.terms.items():
        local[n] = f"i_{len(local)}"
        lines.append(f"    {local[n]} = x[{n!r}]")
        if checked:
            lines += [f"    if {_type_test(local[n], t)}:", "        raise INVALID"]
    values, fired = [], []
    for k, t in enumerate(tables):
        lines.append(f"    # table {t.id} ({t.kind})")
        tests = []
        for conds in t.conditions:
            parts = [c.python(local[n], t.input_types[n].nullable) for c, n in zip(conds, t.inputs, strict=True)]
            tests.append(" and ".join(p for p in parts if p is not None) or "True")
        outs = [f"o{k}_{j}" for j in range(len(t.names))]
        target = ", ".join(outs) + ("," if len(outs) == 1 else "")
        if t.kind in ("FIRST", "PRIORITY"):
            order = range(len(tests)) if t.kind == "FIRST" else sorted(range(len(tests)), key=t._rank)
            for pos, i in enumerate(order):
                literal = ", ".join(repr(v) for v in t.outputs[i])
                lines += [f"    {'if' if pos == 0 else 'elif'} {tests[i]}:",
                          f"        {', '.join(outs)} = {literal}", f"        f{k} = ({i},)"]
            lines += ["    else:", f"        {target} = {tuple(t.empty.values())!r}", f"        f{k} = ()"]
        else:
            simple = t.kind in ("COLLECT", "RULE ORDER") and len(t.names) == 1
            lines.append(f"    f{k} = []")
            if simple:
                lines.append(f"    {outs[0]} = []")
            for i, test in enumerate(tests):
                lines += [f"    if {test}:", f"        f{k}.append({i})"]
                if simple:
                    lines.append(f"        {outs[0]}.append({t.outputs[i][0]!r})")
            if not simple:
                if t.kind in ("UNIQUE", "ANY"):
                    lines += [f"    if len(f{k}) == 1:", f"        {target} = OUT{k}[f{k}[0]]", "    else:"]
                    pad = "        "
                else:
                    pad = "    "
                lines += [f"{pad}r{k}, f{k} = T{k}.resolve(f{k})",
                          f"{pad}{target} = tuple(r{k}.values())"]
        if t.single:
            for name, out in zip(t.names, outs, strict=True):
                local[name] = out
        values.append("(" + ", ".join(outs) + ("," if len(outs) == 1 else "") + ")")
        fired.append(f"f{k}")

    def ref(r: str) -> tuple[str, bool]:
        table_id, output = r.split(".", 1)
        k = next(i for i, t in enumerate(tables) if t.id == table_id)
        return f"o{k}_{tables[k].names.index(output)}", tables[k].single

    d = ruleset.spec.decision
    for name, refs in (("actions", d.actions), ("alerts", d.alerts)):
        parts = []
        for r in refs:
            var, single = ref(r)
            parts.append(f"([{var}] if {var} is not None else [])" if single else var)
        joined = " + ".join(parts) or "[]"
        lines.append(f"    {name} = tuple(dict.fromkeys({joined}))")
    lines.append(f"    return ({ref(d.tier)[0]}, {ref(d.package)[0]}, actions, alerts, ({', '.join(values)},), "
                 f"({', '.join(fired)},))")
    return "\n".join(lines) + "\n"


def _generate_matcher(spec: TableSpec, conditions: list[list[Condition]],
                      input_types: dict[str, InputType]) -> Callable[[Mapping[str, object]], list[int]]:
    """``match(x)``: the indices of every rule whose entries hold, compiled to plain comparisons."""
    lines = ["def match(x):"]
    for k, name in enumerate(spec.inputs):
        lines.append(f"    v{k} = x[{name!r}]")
    lines.append("    hits = []")
    for i, conds in enumerate(conditions):
        tests = [c.python(f"v{k}", input_types[n].nullable) for k, (c, n) in enumerate(zip(conds, spec.inputs,
                                                                                             strict=True))]
        cond = " and ".join(t for t in tests if t is not None) or "True"
        lines += [f"    if {cond}:", f"        hits.append({i})"]
    lines.append("    return hits")
    namespace: dict[str, object] = {}
    exec(compile("\n".join(lines), f"<table {spec.id}>", "exec"), namespace)
    return namespace["match"]  # type: ignore[return-value]


def _output_value(output: OutputSpec, value: object) -> object:
    return check_value(value, output.type, output.values)


def compile_table(spec: TableSpec, available: dict[str, InputType], products: dict[str, int],
                  findings: list[Finding]) -> Table | None:
    """Compile one table, appending what is wrong to ``findings``; None when it cannot be compiled."""
    before = len(findings)

    def bad(message: str, rules: tuple[str, ...] = (), kind: Kind = Kind.SCHEMA) -> None:
        findings.append(Finding(kind, spec.id, message, rules))

    for name in spec.inputs:
        if name not in available:
            bad(f"input {name!r} is not in the vocabulary nor an output of an earlier single-hit table")
    if len(set(spec.inputs)) != len(spec.inputs):
        bad("an input is listed twice")
    names = [o.name for o in spec.outputs]
    if len(set(names)) != len(names):
        bad("an output is listed twice")
    for o in spec.outputs:
        if o.values is not None and o.type != "string":
            bad(f"output {o.name!r}: only text outputs list allowed values")
    policy = spec.hit_policy
    if policy in (HitPolicy.PRIORITY, HitPolicy.OUTPUT_ORDER) and any(o.values is None for o in spec.outputs):
        bad(f"hit policy {policy.value} needs every output to list its values in priority order")
    if policy.aggregator is not None:
        if len(spec.outputs) != 1:
            bad(f"hit policy {policy.value} aggregates one output; this table has {len(spec.outputs)}")
        elif policy.aggregator != "COUNT" and spec.outputs[0].type not in ("number", "integer"):
            bad(f"hit policy {policy.value} needs a number output")
    if spec.default is not None and not policy.single_hit:
        bad("a default output is only meaningful for single-hit tables")
    ids = [r.id for r in spec.rules]
    for dup in {i for i in ids if ids.count(i) > 1}:
        bad("rule id used twice", (dup,))
    if len(findings) > before or any(n not in available for n in spec.inputs):
        return None

    input_types = {n: available[n] for n in spec.inputs}
    conditions: list[list[Condition]] = []
    outputs: list[tuple] = []
    for rule in spec.rules:
        for name in rule.when:
            if name not in spec.inputs:
                bad(f"entry for {name!r}, which is not an input of the table (inputs: {', '.join(spec.inputs)})",
                    (rule.id,), Kind.ENTRY)
        conds = []
        for name in spec.inputs:
            t = input_types[name]
            if name not in rule.when:
                conds.append(any_condition(t.type))
                continue
            try:
                conds.append(parse(rule.when[name], t.type, t.values))
            except EntryError as e:
                bad(f"input {name}: {e}", (rule.id,), Kind.ENTRY)
                conds.append(any_condition(t.type))
        conditions.append(conds)
        if set(rule.then) != set(names):
            bad(f"outputs must be exactly {', '.join(names)} (got {', '.join(rule.then) or 'none'})",
                (rule.id,), Kind.ENTRY)
            outputs.append((None,) * len(names))
            continue
        row = []
        for o in spec.outputs:
            try:
                row.append(_output_value(o, rule.then[o.name]))
            except ValueError as e:
                bad(f"output {o.name}: {e}", (rule.id,), Kind.ENTRY)
                row.append(None)
        outputs.append(tuple(row))
    default = None
    if spec.default is not None:
        try:
            if set(spec.default) != set(names):
                raise ValueError(f"must give exactly {', '.join(names)}")
            default = tuple(_output_value(o, spec.default[o.name]) for o in spec.outputs)
        except ValueError as e:
            bad(f"default output: {e}")
    if len(findings) > before:
        return None
    priority = [tuple(o.values.index(v) if o.values is not None and v in o.values else 0
                      for o, v in zip(spec.outputs, row, strict=True)) for row in outputs]
    matcher = _generate_matcher(spec, conditions, input_types)
    return Table(spec, input_types, conditions, outputs, default, priority, matcher)


def compile_ruleset(spec: RulesetSpec, vocabulary: Vocabulary | None = None) -> tuple[Ruleset | None,
                                                                                      list[Finding]]:
    """Compile and type-check a ruleset; returns it (None when broken) and the schema and entry findings."""
    vocabulary = vocabulary or load_vocabulary()
    available = {n: InputType(t.type, t.values, False) for n, t in vocabulary.terms.items()}
    findings: list[Finding] = []
    tables: list[Table] = []
    seen: set[str] = set()
    outputs_of: dict[str, dict[str, OutputSpec]] = {}
    for t in spec.tables:
        if t.id in seen:
            findings.append(Finding(Kind.SCHEMA, t.id, "table id used twice"))
            continue
        seen.add(t.id)
        table = compile_table(t, available, vocabulary.products, findings)
        outputs_of[t.id] = {o.name: o for o in t.outputs}
        for o in t.outputs:
            if o.name in available:
                findings.append(Finding(Kind.SCHEMA, t.id, f"output {o.name!r} has the name of a vocabulary term "
                                                           "or of an earlier output; rename it"))
            elif t.hit_policy.single_hit:
                available[o.name] = InputType(o.type, o.values, True)
        if table is not None:
            tables.append(table)
    d = spec.decision
    for field_name, refs, single in (("tier", [d.tier], True), ("package", [d.package], True),
                                     ("actions", list(d.actions), False), ("alerts", list(d.alerts), False)):
        for ref in refs:
            table_id, _, output = ref.partition(".")
            if output not in outputs_of.get(table_id, {}):
                findings.append(Finding(Kind.SCHEMA, table_id or "?", f"decision.{field_name} refers to {ref!r}, "
                                                                      "which is no table output (TABLE.OUTPUT)"))
            elif single and not spec.table(table_id).hit_policy.single_hit:
                findings.append(Finding(Kind.SCHEMA, table_id, f"decision.{field_name} must come from a single-hit "
                                                               "table"))
    findings += _catalogue_findings(spec, outputs_of)
    if findings:
        return None, findings
    terms = {n: available[n] for t in tables for n in t.spec.inputs if n in vocabulary.terms}
    return Ruleset(spec, tables, terms), findings


def _catalogue_findings(spec: RulesetSpec, outputs_of: dict[str, dict[str, OutputSpec]]) -> list[Finding]:
    """Every action the rules can recommend must be in the ruleset's catalogue (when it has one)."""
    if spec.catalogue is None:
        return []
    findings = []
    for ref in spec.decision.actions:
        table_id, _, output = ref.partition(".")
        spec_out = outputs_of.get(table_id, {}).get(output)
        if spec_out is None:
            continue
        if spec_out.values is None:
            findings.append(Finding(Kind.CATALOGUE, table_id, f"output {output!r} gives actions but lists no values; "
                                                              "list them so each can be checked against the catalogue"))
            continue
        for value in spec_out.values:
            if value not in spec.catalogue.actions:
                rules = tuple(r.id for r in spec.table(table_id).rules if r.then.get(output) == value)
                message = f"action {value!r} is recommended by the rules but the action catalogue lacks it"
                findings.append(Finding(Kind.CATALOGUE, table_id, message, rules))
    return findings


def build(spec: RulesetSpec, vocabulary: Vocabulary | None = None) -> Ruleset:
    """Compile or raise :class:`RuleFileError` naming the first problems."""
    ruleset, findings = compile_ruleset(spec, vocabulary)
    if ruleset is None:
        raise RuleFileError(spec.name, "; ".join(f.describe() for f in findings[:5]))
    return ruleset
