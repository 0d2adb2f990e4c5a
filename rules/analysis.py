"""Static analysis of decision tables: gaps, overlaps, masked rules, product suitability, golden cases.

The input space of a table is cut, input by input, into cells inside which every rule entry is either true or
false (between the numbers any entry mentions, at those numbers, and at each text value). A sweep over the
cells, keeping only the rules still matching, finds every region no rule covers, every region several rules
cover, and every rule that never decides the result. Each finding carries a witness: a concrete input from that
region, which the test suite evaluates to confirm the finding.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from rules.engine import HitPolicyViolation, InputType, Ruleset, Table, check_value, compile_ruleset
from rules.findings import Finding, Kind
from rules.model import HitPolicy, RulesetSpec
from rules.unary import INF, Condition
from rules.vocabulary import Vocabulary, load_vocabulary

MAX_FINDINGS_PER_KIND = 10
OTHER_TEXT = "other"  # stands for any text value no entry names


@dataclass(frozen=True)
class Cell:
    value: object  # representative (the witness value)
    text: str  # the cell for people: "(100000..1000000)", "= 5", "premier"


def _integer_in(lo: float, lo_closed: bool, hi: float, hi_closed: bool) -> int | None:
    if lo == -INF:
        c = math.floor(hi) if hi != INF else 0
        if hi != INF and c == hi and not hi_closed:
            c -= 1
        return c
    c = math.ceil(lo)
    if c == lo and not lo_closed:
        c += 1
    if c < hi or (c == hi and hi_closed) or hi == INF:
        return c
    return None


def _numeric_cells(conds: list[Condition], integer: bool) -> list[Cell]:
    points = sorted({p for c in conds if not c.any for i in c.intervals for p in (i.lo, i.hi) if p not in (INF, -INF)})
    if not points:
        return [Cell(0, "any")]
    cells: list[Cell] = []
    bounds = [-INF, *points, INF]
    for k in range(len(bounds) - 1):
        lo, hi = bounds[k], bounds[k + 1]
        if k > 0:
            p = lo
            if not integer or float(p).is_integer():
                cells.append(Cell(int(p) if integer or float(p).is_integer() else p, f"= {_fmt(p)}"))
        if integer:
            rep = _integer_in(lo, False, hi, False)
            if rep is None:
                continue
        elif lo == -INF:
            rep = hi - 1
        elif hi == INF:
            rep = lo + 1
        else:
            rep = (lo + hi) / 2
        text = (f"< {_fmt(hi)}" if lo == -INF else f"> {_fmt(lo)}" if hi == INF
                else f"({_fmt(lo)}..{_fmt(hi)})")
        cells.append(Cell(rep, text))
    return cells


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


def cells_for(conds: list[Condition], t: InputType) -> list[Cell]:
    """Cells of one input's domain, given the entries of the rules still in play."""
    if t.type in ("number", "integer"):
        return _numeric_cells(conds, t.type == "integer")
    if t.type == "boolean":
        return [Cell(False, "false"), Cell(True, "true")]
    if t.values is not None:
        return [Cell(v, f'"{v}"') for v in t.values]
    named = sorted({v for c in conds if not c.any for v in c.values})
    other = OTHER_TEXT
    while other in named:
        other += "_"
    return [*(Cell(v, f'"{v}"') for v in named), Cell(other, "any other text")]


class _Sweep:
    """Depth-first walk over the cells of a table's inputs."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.inputs = list(table.spec.inputs)
        self.types = [table.input_types[n] for n in self.inputs]

    def walk(self, active: list[int], stop_when_empty: bool = True) -> Iterator[tuple[list[Cell], list[int]]]:
        """Yield (cells, active rules) at every leaf, and at every point where no rule is left."""
        yield from self._walk(0, active, [], stop_when_empty)

    def _walk(self, d: int, active: list[int], path: list[Cell], stop: bool) -> Iterator[tuple[list[Cell], list[int]]]:
        if d == len(self.inputs) or (stop and not active):
            yield path, active
            return
        conds = [self.table.conditions[r][d] for r in active]
        for cell in cells_for(conds, self.types[d]):
            sub = [r for r in active if self.table.conditions[r][d].matches(cell.value)]
            yield from self._walk(d + 1, sub, [*path, cell], stop)

    def witness(self, path: list[Cell]) -> dict[str, object]:
        out: dict[str, object] = {}
        for k, name in enumerate(self.inputs):
            if k < len(path):
                out[name] = path[k].value
            else:
                out[name] = cells_for([], self.types[k])[0].value
        return out

    def region(self, path: list[Cell]) -> str:
        return ", ".join(f"{self.inputs[k]} {c.text}" for k, c in enumerate(path) if c.text != "any") or "every input"


def _capped(findings: list[Finding], kind: Kind, table: str) -> bool:
    return sum(1 for f in findings if f.kind is kind and f.table == table) >= MAX_FINDINGS_PER_KIND


def analyse_table(table: Table) -> list[Finding]:
    """Gaps, overlaps and masked or unreachable rules of one compiled table."""
    findings: list[Finding] = []
    sweep = _Sweep(table)
    spec = table.spec
    policy = spec.hit_policy
    ids = [r.id for r in spec.rules]
    everyone = list(range(len(spec.rules)))
    check_gaps = policy.single_hit and spec.default is None
    seen_overlaps: set[tuple[int, ...]] = set()
    for path, active in sweep.walk(everyone):
        if not active:
            if check_gaps and not _capped(findings, Kind.GAP, spec.id):
                findings.append(Finding(Kind.GAP, spec.id, f"no rule covers {sweep.region(path)}",
                                        witness=sweep.witness(path)))
            continue
        if len(active) > 1 and policy in (HitPolicy.UNIQUE, HitPolicy.ANY):
            clash = active
            if policy is HitPolicy.ANY and len({table.outputs[r] for r in active}) == 1:
                continue
            key = tuple(clash)
            if key in seen_overlaps or _capped(findings, Kind.OVERLAP, spec.id):
                continue
            seen_overlaps.add(key)
            what = "with different outputs " if policy is HitPolicy.ANY else ""
            findings.append(Finding(Kind.OVERLAP, spec.id, f"rules match together {what}where {policy.value} "
                                    f"allows one: {sweep.region(path)}", tuple(ids[r] for r in clash),
                                    witness=sweep.witness(path)))
    for r in everyone:
        reachable = _first_point(sweep, [r], r, dominated_by=[])
        if reachable is None:
            findings.append(Finding(Kind.MASKED, spec.id, "the rule can never match: its entries exclude every input",
                                    (ids[r],)))
            continue
        if policy not in (HitPolicy.FIRST, HitPolicy.PRIORITY):
            continue
        if policy is HitPolicy.FIRST:
            dominant = list(range(r))
        else:
            dominant = [s for s in everyone if (table.priority[s], s) < (table.priority[r], r)]
        if _first_point(sweep, [*dominant, r], r, dominated_by=dominant) is None:
            # Everywhere the rule matches another decides: show where it matches and who wins there.
            winners = [s for s in dominant if all(table.conditions[s][k].matches(v) for k, v in
                                                  enumerate(sweep.witness(reachable).values()))]
            findings.append(Finding(Kind.MASKED, spec.id, f"the rule never decides under {policy.value}: wherever it "
                                    f"matches, rule {ids[winners[0]] if winners else '?'} wins",
                                    (ids[r], *(ids[s] for s in winners[:1])), witness=sweep.witness(reachable)))
    return findings


def _first_point(sweep: _Sweep, active: list[int], rule: int, dominated_by: list[int]) -> list[Cell] | None:
    """A path where ``rule`` matches and none of ``dominated_by`` does; None when there is none."""
    dominated = set(dominated_by)
    for path, hits in sweep.walk(active):
        if rule in hits and not dominated.intersection(hits) and len(path) == len(sweep.inputs):
            return path
    return None


def suitability(table: Table, products: dict[str, int]) -> list[Finding]:
    """A rule offering a product rated Rn must exclude stated levels below n and expired questionnaires."""
    findings: list[Finding] = []
    spec = table.spec
    for i, rule in enumerate(spec.rules):
        for value in table.outputs[i]:
            if not isinstance(value, str) or value not in products:
                continue
            level = products[value]
            if "stated_risk_level" not in spec.inputs or "questionnaire_expired" not in spec.inputs:
                findings.append(Finding(Kind.SUITABILITY, spec.id, f"offers {value} (R{level}) in a table that does "
                                        "not read stated_risk_level and questionnaire_expired", (rule.id,)))
                continue
            conds = dict(zip(spec.inputs, table.conditions[i], strict=True))
            below = [lv for lv in range(0, level) if conds["stated_risk_level"].matches(lv)]
            if below:
                findings.append(Finding(Kind.SUITABILITY, spec.id, f"offers {value} (R{level}) to clients whose "
                                        f"stated level is {below[0]}", (rule.id,),
                                        witness={"stated_risk_level": below[0]}))
            elif conds["stated_risk_level"].any or any(i.lo == -INF for i in conds["stated_risk_level"].intervals):
                findings.append(Finding(Kind.SUITABILITY, spec.id, f"offers {value} (R{level}) without requiring a "
                                        f"stated level of at least {level}", (rule.id,),
                                        witness={"stated_risk_level": -1}))
            if conds["questionnaire_expired"].matches(True):
                findings.append(Finding(Kind.SUITABILITY, spec.id, f"offers {value} (R{level}) while the "
                                        "questionnaire is expired", (rule.id,),
                                        witness={"questionnaire_expired": True}))
    return findings


def _normalise(value: object) -> object:
    if isinstance(value, tuple):
        return list(value)
    return value


def golden_cases(table: Table) -> list[Finding]:
    """Run the table's golden cases; a finding for each case that fails or cannot run."""
    findings: list[Finding] = []
    spec = table.spec
    names = [o.name for o in spec.outputs]
    for case in spec.tests:
        label = f"golden case {case.description!r}"
        missing = [n for n in spec.inputs if n not in case.given]
        extra = [n for n in case.given if n not in spec.inputs]
        if missing or extra or set(case.expect) != set(names):
            problem = (f"missing inputs {', '.join(missing)}" if missing else f"unknown inputs {', '.join(extra)}"
                       if extra else f"expect must give exactly {', '.join(names)}")
            findings.append(Finding(Kind.GOLDEN, spec.id, f"{label}: {problem}"))
            continue
        try:
            given = {n: check_value(case.given[n], t.type, t.values) if case.given[n] is not None or not t.nullable
                     else None for n, t in table.input_types.items()}
        except ValueError as e:
            findings.append(Finding(Kind.GOLDEN, spec.id, f"{label}: {e}"))
            continue
        try:
            result, fired = table.run(given)
        except HitPolicyViolation as e:
            findings.append(Finding(Kind.GOLDEN, spec.id, f"{label}: {e}", tuple(e.rules), witness=given))
            continue
        expected = {k: _normalise(v) for k, v in case.expect.items()}
        if result != expected:
            findings.append(Finding(Kind.GOLDEN, spec.id, f"{label}: expected {expected}, got {result}",
                                    tuple(table.rule_ids(fired)), witness=given))
    return findings


def analyse(ruleset: Ruleset, vocabulary: Vocabulary | None = None, golden: bool = True) -> list[Finding]:
    """Every analysis finding of a compiled ruleset (empty when it is complete, consistent and passes its cases)."""
    vocabulary = vocabulary or load_vocabulary()
    findings: list[Finding] = []
    for table in ruleset.tables:
        findings += analyse_table(table)
        findings += suitability(table, vocabulary.products)
        if golden:
            findings += golden_cases(table)
    return findings


def validate(spec: RulesetSpec, vocabulary: Vocabulary | None = None) -> list[Finding]:
    """Every finding of a ruleset: schema and entries first; when it compiles, the analysis and golden cases."""
    ruleset, findings = compile_ruleset(spec, vocabulary)
    return findings if ruleset is None else analyse(ruleset, vocabulary)
